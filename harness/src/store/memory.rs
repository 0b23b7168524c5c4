//! The in-memory store: the reference implementation of the seam, for unit tests.

use std::collections::BTreeMap;

use super::{
    AppendReport, EventSink, EventSource, SeqRange, StoredSnapshot, StreamInfo, check_seqs,
};
use crate::error::Result;
use crate::event::Envelope;

#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    streams: BTreeMap<String, Vec<Envelope>>,
    snapshots: BTreeMap<String, Vec<StoredSnapshot>>,
    /// What was set aside, by source.
    pub quarantined: Vec<(String, serde_json::Value)>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl EventSource for MemoryStore {
    fn streams(&self) -> Result<Vec<StreamInfo>> {
        Ok(self
            .streams
            .values()
            .filter_map(|evs| {
                let mut info = StreamInfo::new(evs.first()?);
                evs.iter().for_each(|e| info.add(e));
                Some(info)
            })
            .collect())
    }

    fn read(
        &self,
        stream: &str,
        range: SeqRange,
        f: &mut dyn FnMut(Envelope) -> Result<()>,
    ) -> Result<()> {
        for e in self
            .streams
            .get(stream)
            .into_iter()
            .flatten()
            .filter(|e| range.contains(e.seq))
        {
            f(e.clone())?;
        }
        Ok(())
    }

    fn snapshots(&self, stream: &str) -> Result<Vec<StoredSnapshot>> {
        Ok(self.snapshots.get(stream).cloned().unwrap_or_default())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

impl EventSink for MemoryStore {
    fn append(&mut self, events: &[Envelope]) -> Result<AppendReport> {
        let last = self
            .streams
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.last()?.seq)))
            .collect();
        check_seqs(&last, events)?;
        for e in events {
            self.streams
                .entry(e.stream_key.clone())
                .or_default()
                .push(e.clone());
        }
        Ok(AppendReport::all_stored(events))
    }

    fn put_snapshot(&mut self, s: &StoredSnapshot) -> Result<()> {
        let v = self.snapshots.entry(s.stream.clone()).or_default();
        v.retain(|x| (x.seq, &x.projector) != (s.seq, &s.projector));
        v.push(s.clone());
        v.sort_by(|a, b| (a.seq, &a.projector).cmp(&(b.seq, &b.projector)));
        Ok(())
    }

    fn quarantine(&mut self, source: &str, record: &serde_json::Value) -> Result<String> {
        self.quarantined.push((source.to_string(), record.clone()));
        Ok("memory".into())
    }
}
