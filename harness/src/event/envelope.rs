//! The envelope: ids, stream and seq, times, tenancy, correlation and the body. One shape for
//! every store and every ingress.

use serde::{Deserialize, Serialize};

use super::{Body, derived_ulid};

/// Tenancy columns (seeds 000/001/003); all optional.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Tenancy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
}

/// Correlation columns; all optional.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Correlation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
}

/// The full envelope of one recorded event.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Envelope {
    /// ULID; derived from event time and (stream, seq) when not given, so imports are
    /// deterministic.
    pub event_id: String,
    pub stream_key: String,
    /// Per stream, gapless, from 1.
    pub seq: u64,
    /// Event time, ns since the Unix epoch.
    pub occurred_at: i64,
    /// When it was recorded, ns since the Unix epoch.
    pub ingested_at: i64,
    /// Instrument symbol (or asset, for balances).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instrument: Option<String>,
    #[serde(flatten)]
    pub tenancy: Tenancy,
    #[serde(flatten)]
    pub correlation: Correlation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(flatten)]
    pub body: Body,
}

impl Envelope {
    /// A new envelope with a derived event id.
    pub fn new(
        stream_key: &str,
        seq: u64,
        occurred_at: i64,
        instrument: Option<&str>,
        body: Body,
    ) -> Self {
        Envelope {
            event_id: derived_ulid(occurred_at, stream_key, seq),
            stream_key: stream_key.to_string(),
            seq,
            occurred_at,
            ingested_at: occurred_at,
            instrument: instrument.map(str::to_string),
            tenancy: Tenancy::default(),
            correlation: Correlation::default(),
            idempotency_key: None,
            body,
        }
    }
}
