//! `tapedeck sweep`: a strategy's config over a grid, each point a backtest. Built with the
//! CLI's `sweep` feature (polars); without it the command says how to get it.

#[cfg(feature = "sweep")]
mod built;

#[cfg(not(feature = "sweep"))]
#[test]
fn without_the_feature_sweep_says_how_to_build_it() {
    let o = super::tapedeck(&[
        "sweep",
        "--store",
        "x",
        "--strategy",
        "m.wasm",
        "--grid",
        "g.toml",
        "--out",
        "o",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--features sweep"), "{err}");
}
