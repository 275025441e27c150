//! The child processes of the cross-process tests (`processes`, `shared_redis`): this test
//! binary re-run on one `#[test]` that does nothing unless its environment gives it a role,
//! and the marker files in a work directory by which children say what they did.

use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cacher::Cache;

/// How many processes ask at once.
pub(crate) const PROCESSES: usize = 4;

/// This test binary re-run on the test `test` alone (its module path, as `cargo test --exact`
/// names it) with `env` set and its stdout piped.
pub(crate) fn spawn(test: &str, env: &[(&str, &OsStr)]) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", test, "--nocapture"])
        .stdout(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    command.spawn().unwrap()
}

/// How many files in `dir` have a name starting with `prefix`.
pub(crate) fn count(dir: &Path, prefix: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with(prefix))
        })
        .count()
}

/// Leaves `<what>-<pid>` in `work`.
pub(crate) fn mark(work: &Path, what: &str) {
    std::fs::write(work.join(format!("{what}-{}", std::process::id())), b"").unwrap();
}

/// Holds a computation until `n` processes have marked `missed`, so that without leases each
/// of them would compute. Bounded, so a broken build fails a count instead of hanging.
pub(crate) fn until_all_missed(work: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(work, "missed-") < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until some process has marked `what`, at most 30 s.
pub(crate) fn until_marked(work: &Path, what: &str) {
    let end = Instant::now() + Duration::from_secs(30);
    while count(work, &format!("{what}-")) == 0 {
        assert!(Instant::now() < end, "no process marked {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A child's part in "processes ask one missing key": memoizes `fetch` (`x * 3`) on `cache`,
/// marks `missed` if 14 is not cached, asks for 14 and prints `value <v> waits <waits>`. The
/// process that computes marks `computed` and, if `hold`, computes until it is killed.
pub(crate) fn ask_for_one_key(cache: &Cache, work: &Path, hold: bool) {
    let memo = cache
        .memoize("fetch")
        .wrap(|x: u64| {
            mark(work, "computed");
            if hold {
                std::thread::sleep(Duration::from_secs(120));
            }
            until_all_missed(work, PROCESSES);
            x * 3
        })
        .unwrap();
    let key = memo.key_for(&14).unwrap();
    if !cache.contains(&key).unwrap() {
        mark(work, "missed");
    }
    let value = memo.call(14);
    let mut out = std::io::stdout().lock();
    writeln!(out, "value {value} waits {}", cache.stats().total.waits).unwrap();
}

/// The batch function of the batch children: marks `computed-<x>-<pid>` for each input, then
/// holds until every child has missed (or, if `hold`, until killed: after marking `holding`).
pub(crate) fn batch_fn(work: &Path, hold: bool) -> impl Fn(Vec<u64>) -> Vec<u64> + '_ {
    move |xs: Vec<u64>| {
        for x in &xs {
            mark(work, &format!("computed-{x}"));
        }
        if hold {
            mark(work, "holding");
            std::thread::sleep(Duration::from_secs(120));
        }
        until_all_missed(work, PROCESSES);
        xs.iter().map(|x| x * 3).collect()
    }
}

/// The inputs of a batch child, given as `1,2,3`.
pub(crate) fn inputs(list: &str) -> Vec<u64> {
    list.split(',').map(|x| x.parse().unwrap()).collect()
}

/// The overlapping batches of four children, two of them the same keys in opposite orders.
pub(crate) const BATCHES: [&str; PROCESSES] = ["1,2,3,4", "4,3,2,1", "3,4,5,6", "6,5,4,3"];

/// A batch child's part: memoizes [`batch_fn`] as the batch function `fetch_many` on `cache`,
/// marks `missed` if any input is not cached, asks for `inputs` and prints `values [..]`.
pub(crate) fn ask_for_batch(cache: &Cache, work: &Path, inputs: Vec<u64>, hold: bool) {
    let memo = cache
        .memoize("fetch_many")
        .wrap_batch(batch_fn(work, hold))
        .unwrap();
    let missing = inputs
        .iter()
        .any(|x| !cache.contains(memo.key_for(x).unwrap()).unwrap());
    if missing {
        mark(work, "missed");
    }
    let values = memo.call_many(inputs).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "values {values:?}").unwrap();
}

/// What [`PROCESSES`] children asking for [`BATCHES`] (in that order) must have done: each
/// got its values and missed, and each of the keys 1 to 6 was computed by one of them.
pub(crate) fn assert_each_key_computed_once(children: Vec<Child>, work: &Path) {
    let outputs = outputs(children);
    for (batch, output) in BATCHES.iter().zip(&outputs) {
        let want: Vec<u64> = inputs(batch).iter().map(|x| x * 3).collect();
        assert!(
            output.lines().any(|l| l == format!("values {want:?}")),
            "{batch}: {output}"
        );
    }
    assert_eq!(count(work, "missed-"), PROCESSES);
    for x in 1..=6 {
        assert_eq!(count(work, &format!("computed-{x}-")), 1, "key {x}");
    }
}

/// Waits for every child, checks each succeeded, and returns what they printed.
pub(crate) fn outputs(children: Vec<Child>) -> Vec<String> {
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap()
        })
        .collect()
}

/// What [`PROCESSES`] children that ran [`ask_for_one_key`] must have done: each got 42 and
/// missed, one computed, and each of the others waited for it once.
pub(crate) fn assert_one_computed(children: Vec<Child>, work: &Path) {
    let outputs = outputs(children);
    let said: Vec<&str> = outputs
        .iter()
        .flat_map(|o| o.lines().filter(|l| l.starts_with("value ")))
        .collect();
    assert_eq!(said.len(), PROCESSES, "{outputs:?}");
    assert!(said.iter().all(|l| l.starts_with("value 42 ")), "{said:?}");
    assert_eq!(count(work, "missed-"), PROCESSES);
    assert_eq!(count(work, "computed-"), 1, "{said:?}");
    assert_eq!(
        said.iter().filter(|l| l.ends_with("waits 1")).count(),
        PROCESSES - 1,
        "{said:?}"
    );
}

/// A child killed (`SIGKILL`) when dropped, so a failed test leaves no holder behind.
pub(crate) struct KillOnDrop(pub(crate) Child);

impl KillOnDrop {
    /// Kills the child now and reaps it.
    pub(crate) fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.kill();
    }
}
