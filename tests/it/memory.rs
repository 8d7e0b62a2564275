//! Peak-memory measurements of one test, taken in a child process that runs
//! only that test: the parent's peak belongs to every test it ran.

/// Set in the child process, which measures.
const MEASURING: &str = "IT_MEASURE_PEAK_RSS";

/// The process's peak resident set (`VmHWM`), in bytes.
pub fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// In the parent: runs `test` (its full path) alone in a child process,
/// checks it passed and printed a "peak RSS" figure, and returns true, so
/// the caller returns. In the child: false, so the caller measures.
pub fn ran_in_child(test: &str) -> bool {
    if std::env::var_os(MEASURING).is_some() {
        return false;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(MEASURING, "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    println!("{text}");
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(
        text.contains("peak RSS"),
        "the child measured nothing:\n{text}"
    );
    true
}
