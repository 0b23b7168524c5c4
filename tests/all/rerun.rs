//! `tapedeck rerun`: a run card run again is identical; when a stream's data changed, the
//! difference names it; a module that is not the card's is refused.

use tapedeck::event::Envelope;
use tapedeck::store::{SeqRange, StoreUri};
use tapedeck_test_guests as guests;

use super::{fixtures, tapedeck, tmp};

fn backtest(store: &str, module: &str, out: &str) {
    let o = tapedeck(&[
        "backtest",
        "--store",
        store,
        "--strategy",
        module,
        "--latency-us",
        "3",
        "--jobs",
        "2",
        "--out",
        out,
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_rerun_is_identical_until_a_streams_data_changes() {
    let store = tmp("store");
    super::replay::copy_dir(&fixtures(), &store);
    let run = tmp("run");
    let (s, r) = (store.to_str().unwrap(), run.to_str().unwrap());
    backtest(s, guests::EMA_CROSS, r);
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    let data = card["data"].as_array().unwrap();
    assert!(data.len() > 1, "{card}");
    assert_eq!(data[0]["digest"].as_str().unwrap().len(), 32);
    assert_eq!(card["modules"][0]["path"], guests::EMA_CROSS);

    let o = tapedeck(&["rerun", r]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.starts_with("identical: Backtest"), "{stdout}");

    // One more event at the end of one stream.
    let key = data[1]["stream"].as_str().unwrap().to_string();
    let uri = StoreUri::File(store.clone());
    let mut last = None;
    uri.open()
        .unwrap()
        .read(&key, SeqRange::ALL, &mut |e| {
            last = Some(e);
            Ok(())
        })
        .unwrap();
    let last = last.unwrap();
    let more = Envelope::new(
        &key,
        last.seq + 1,
        last.occurred_at + 1,
        last.instrument.as_deref(),
        last.body.clone(),
    );
    uri.open_writable().unwrap().append(&[more]).unwrap();
    let o = tapedeck(&["rerun", r, "--jobs", "2"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.starts_with(&format!(
            "different: config.json: .data[stream={key}].digest: {} -> \"",
            data[1]["digest"]
        )),
        "{stdout}"
    );
    for d in [&store, &run] {
        std::fs::remove_dir_all(d).unwrap();
    }
    let mut rerun = run.into_os_string();
    rerun.push(".rerun");
    std::fs::remove_dir_all(rerun).unwrap();
}

#[test]
fn a_rerun_refuses_a_module_that_is_not_the_cards() {
    let dir = tmp("module");
    std::fs::create_dir_all(&dir).unwrap();
    let module = dir.join("strategy.wasm");
    std::fs::copy(guests::EMA_CROSS, &module).unwrap();
    let run = dir.join("run");
    let fixtures = fixtures();
    backtest(
        fixtures.to_str().unwrap(),
        module.to_str().unwrap(),
        run.to_str().unwrap(),
    );
    std::fs::copy(guests::EMA_CROSS_V2, &module).unwrap();
    let o = tapedeck(&["rerun", run.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("is not the module the run used") && err.contains("strategy.wasm"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
