//! The deployment files: the Kubernetes manifests in `deploy/k8s/` are valid batch/v1 Jobs of
//! a current Kubernetes (kubectl here is 1.20, older than Indexed Jobs, and there is no
//! cluster), and the Slurm and Kubernetes files agree with what `--shard env` reads.
//!
//! The check: each YAML document deserializes into `k8s_openapi`'s `Job` (v1.35 types: a
//! field of the wrong type, or a required one missing, is an error) and serializes back to
//! the same document (the types ignore fields they do not know, so a misspelled or unknown
//! field would be dropped and show as a difference). The test below makes sure the check
//! refuses broken manifests.

use std::path::{Path, PathBuf};

use k8s_openapi::api::batch::v1::Job;
use serde_json::Value;

fn deploy(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(rel)
}

/// `text` as a batch/v1 Job, or why it is not one.
fn job(text: &str) -> Result<Job, String> {
    let doc: Value = serde_norway::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    let job: Job = serde_norway::from_str(text).map_err(|e| format!("not a Job: {e}"))?;
    if doc["apiVersion"] != "batch/v1" || doc["kind"] != "Job" {
        return Err(format!(
            "apiVersion {} kind {}: want batch/v1 Job",
            doc["apiVersion"], doc["kind"]
        ));
    }
    let back = serde_json::to_value(&job).map_err(|e| e.to_string())?;
    if back != doc {
        return Err(format!(
            "fields the batch/v1 Job schema does not have (or a value it changes): {}",
            first_difference(&doc, &back, "")
        ));
    }
    Ok(job)
}

/// The path of the first place `a` has that `b` has not (or where they differ).
fn first_difference(a: &Value, b: &Value, at: &str) -> String {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    None => return format!("{at}.{k}"),
                    Some(w) if w != v => return first_difference(v, w, &format!("{at}.{k}")),
                    _ => {}
                }
            }
            format!("{at} (has more keys)")
        }
        (Value::Array(x), Value::Array(y)) => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                if v != w {
                    return first_difference(v, w, &format!("{at}[{i}]"));
                }
            }
            format!("{at} (length)")
        }
        _ => format!("{at}: {a} became {b}"),
    }
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(deploy(rel)).unwrap()
}

fn env<'a>(job: &'a Job, name: &str) -> Option<&'a str> {
    let c = &job.spec.as_ref()?.template.spec.as_ref()?.containers[0];
    c.env
        .as_ref()?
        .iter()
        .find(|e| e.name == name)?
        .value
        .as_deref()
}

fn args(job: &Job) -> Vec<String> {
    let c = &job
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    c.args.clone().unwrap_or_default()
}

#[test]
fn the_kubernetes_manifests_are_batch_v1_jobs_that_shard_and_merge() {
    let shards =
        job(&read("k8s/shards-job.yaml")).unwrap_or_else(|e| panic!("shards-job.yaml: {e}"));
    let merge = job(&read("k8s/merge-job.yaml")).unwrap_or_else(|e| panic!("merge-job.yaml: {e}"));
    let spec = shards.spec.as_ref().unwrap();
    assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
    let n = spec.completions.unwrap();
    assert_eq!(spec.parallelism, Some(n));
    // The count --shard env reads is the Job's.
    assert_eq!(
        env(&shards, "TAPEDECK_SHARDS"),
        Some(n.to_string().as_str())
    );
    let a = args(&shards);
    assert!(a.windows(2).any(|w| w == ["--shard", "env"]), "{a:?}");
    let out = &a[a.iter().position(|x| x == "--out").unwrap() + 1];
    assert!(out.ends_with("/shard-$(JOB_COMPLETION_INDEX)"), "{out}");
    // The merge reads the directory the shards write into.
    let m = args(&merge);
    assert_eq!(m[0], "merge");
    let from = &m[m.iter().position(|x| x == "--from").unwrap() + 1];
    assert_eq!(Path::new(out).parent().unwrap(), Path::new(from));
    assert_eq!(env(&shards, "RUN_ID"), env(&merge, "RUN_ID"));
    for j in [&shards, &merge] {
        let pod = j.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    }
}

#[test]
fn the_manifest_check_refuses_what_is_not_a_job() {
    let good = read("k8s/shards-job.yaml");
    assert!(job(&good).is_ok());
    for (what, from, to, says) in [
        (
            "a misspelled field",
            "completionMode:",
            "completionMod:",
            ".spec.completionMod",
        ),
        (
            "a field of the wrong type",
            "completions: 8",
            "completions: eight",
            "not a Job",
        ),
        (
            "a container without its (required) name",
            "- name: tapedeck\n          image:",
            "- image:",
            ".spec.template.spec.containers[0]",
        ),
        ("another kind", "kind: Job", "kind: CronJob", "expected Job"),
        (
            "an unknown pod field",
            "restartPolicy: Never",
            "restartPolicy: Never\n      restartPolicyy: Never",
            "restartPolicyy",
        ),
    ] {
        let bad = good.replacen(from, to, 1);
        assert_ne!(bad, good, "{what}: the edit did not apply");
        let e = job(&bad).expect_err(what);
        assert!(e.contains(says), "{what}: {e}");
    }
}

#[test]
fn the_slurm_scripts_shard_by_the_array_and_merge_after_it() {
    let shard = read("slurm/shard.sbatch");
    assert!(shard.contains("--shard env --out \"$run_dir/shard-${SLURM_ARRAY_TASK_ID"));
    let submit = read("slurm/submit.sh");
    assert!(submit.contains("--dependency=\"afterok:$array\""));
    assert!(submit.contains("--array=\"0-$((n - 1))\""));
    assert!(read("slurm/merge.sbatch").contains("merge \"$1\"/shard-* --out \"$2\""));
    for f in [
        "slurm/shard.sbatch",
        "slurm/merge.sbatch",
        "slurm/submit.sh",
        "k8s/run.sh",
    ] {
        let o = std::process::Command::new("bash")
            .arg("-n")
            .arg(deploy(f))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
