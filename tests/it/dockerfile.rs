//! The Dockerfile's invariants, checked without a Docker daemon: a locked
//! release build in a builder stage, a final distroless stage that runs no
//! shell, a numeric non-root user that matches the chart, and a COPY of the
//! exact path cargo writes the binary to.
//!
//! `release_build_produces_the_copied_path` (ignored: a full release build)
//! runs the Dockerfile's cargo command itself and checks the file exists.

use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const BIN: &str = "sales-order-operator";

#[derive(Debug)]
struct Instr {
    op: String,
    args: String,
}

#[derive(Debug)]
struct Stage {
    from: String,
    name: Option<String>,
    instrs: Vec<Instr>,
}

impl Stage {
    fn all(&self, op: &str) -> impl Iterator<Item = &str> {
        self.instrs
            .iter()
            .filter(move |i| i.op == op)
            .map(|i| i.args.as_str())
    }
    fn last(&self, op: &str) -> Option<&str> {
        self.all(op).last()
    }
}

/// Instructions by stage; continuation lines joined, comments dropped.
fn parse(text: &str) -> Vec<Stage> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Stage> = Vec::new();
    for line in logical {
        let (op, args) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let (op, args) = (op.to_ascii_uppercase(), args.trim().to_owned());
        if op == "FROM" {
            let words: Vec<&str> = args
                .split_whitespace()
                .filter(|w| !w.starts_with("--"))
                .collect();
            let name = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
                _ => None,
            };
            stages.push(Stage {
                from: words[0].to_owned(),
                name,
                instrs: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.instrs.push(Instr { op, args });
        }
    }
    stages
}

fn dockerfile() -> Vec<Stage> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile"))
        .expect("Dockerfile at the repository root");
    parse(&text)
}

/// The build stage's `cargo build` words (after any `--mount` flags).
fn cargo_build(stage: &Stage) -> Vec<String> {
    let run = stage
        .all("RUN")
        .find(|r| r.contains("cargo build"))
        .expect("the builder runs `cargo build`");
    let at = run.find("cargo build").unwrap();
    run[at..].split_whitespace().map(str::to_owned).collect()
}

fn flag<'a>(words: &'a [String], name: &str) -> Option<&'a str> {
    words
        .iter()
        .position(|w| w == name)
        .and_then(|i| words.get(i + 1))
        .map(String::as_str)
}

/// Where the final stage copies the binary from, and where to.
fn copied_binary(stages: &[Stage]) -> (String, String, String) {
    let last = stages.last().unwrap();
    let copy = last
        .all("COPY")
        .find(|c| c.starts_with("--from="))
        .expect("final stage copies from the builder");
    let words: Vec<&str> = copy.split_whitespace().collect();
    let from = words[0].trim_start_matches("--from=").to_owned();
    (from, words[1].to_owned(), words[2].to_owned())
}

#[test]
fn build_is_multi_stage_locked_release_of_the_operator_binary() {
    let stages = dockerfile();
    assert!(
        stages.len() >= 2,
        "multi-stage build expected, got {} stage(s)",
        stages.len()
    );
    let (from, src, _) = copied_binary(&stages);
    let builder = stages
        .iter()
        .find(|s| s.name.as_deref() == Some(&from))
        .expect("COPY --from names a stage");
    let cargo = cargo_build(builder);
    for required in ["--release", "--locked"] {
        assert!(
            cargo.iter().any(|w| w == required),
            "cargo build lacks {required}: {cargo:?}"
        );
    }
    assert_eq!(flag(&cargo, "--bin"), Some(BIN), "{cargo:?}");
    let target = flag(&cargo, "--target").expect("an explicit --target (static musl build)");
    assert!(
        target.ends_with("-linux-musl"),
        "static binary expected for distroless/static, got {target}"
    );

    // cargo writes `<target-dir>/<triple>/release/<bin>`; the WORKDIR is
    // the workspace root and target-dir its default `target/`.
    let workdir = builder.last("WORKDIR").expect("builder sets WORKDIR");
    assert!(
        !builder.all("ENV").any(|e| e.contains("CARGO_TARGET_DIR"))
            && !cargo.iter().any(|w| w.starts_with("--target-dir"))
    );
    assert_eq!(
        src,
        format!(
            "{}/target/{target}/release/{BIN}",
            workdir.trim_end_matches('/')
        )
    );
}

#[test]
fn cargo_agrees_on_the_binary_name_layout_and_lockfile() {
    // `--locked` must succeed: cargo metadata --locked fails when Cargo.lock
    // would change, exactly as the image build would.
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--locked", "--offline", "--format-version", "1"])
        .current_dir(ROOT)
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata --locked: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let package = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["name"] == "sales-order-operator"
                && p["manifest_path"].as_str().unwrap().starts_with(ROOT)
        })
        .expect("root package in metadata");
    assert!(
        package["targets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == BIN && t["kind"][0] == "bin"),
        "package has a bin target named {BIN}"
    );
    // The binary this test binary was built with sits at
    // `<target-dir>/<profile>/<bin>` (no triple without --target): the
    // same layout, and the name has no suffix on Linux.
    let target_dir = PathBuf::from(meta["target_directory"].as_str().unwrap());
    let built = PathBuf::from(env!("CARGO_BIN_EXE_sales-order-operator"));
    assert_eq!(built.file_name().unwrap(), BIN);
    assert_eq!(
        built.parent().unwrap().parent().unwrap(),
        target_dir,
        "{}",
        built.display()
    );
}

#[test]
fn final_stage_is_distroless_nonroot_without_a_shell() {
    let stages = dockerfile();
    let last = stages.last().unwrap();
    assert!(
        last.from.starts_with("gcr.io/distroless/static"),
        "final base: {}",
        last.from
    );
    assert!(
        last.from.ends_with(":nonroot"),
        "distroless nonroot variant expected: {}",
        last.from
    );
    assert_eq!(
        last.all("RUN").count(),
        0,
        "the final stage has no shell to RUN anything"
    );
    for op in ["ENTRYPOINT", "CMD"] {
        let value = last.last(op).unwrap_or_else(|| panic!("{op} set"));
        assert!(
            value.starts_with('['),
            "{op} must be exec form (no /bin/sh in distroless): {value}"
        );
    }
    let (_, _, dst) = copied_binary(&stages);
    let entry: Vec<String> = serde_json::from_str(last.last("ENTRYPOINT").unwrap()).unwrap();
    assert_eq!(entry[0], dst, "ENTRYPOINT runs the copied binary");

    // USER uid[:gid], numeric (kubelet's runAsNonRoot check needs a number)
    // and the chart's runAsUser.
    let user = last.last("USER").expect("final stage sets USER");
    let (uid, gid) = user.split_once(':').unwrap_or((user, user));
    let uid: u32 = uid
        .parse()
        .unwrap_or_else(|_| panic!("USER must be numeric, got {user}"));
    let gid: u32 = gid
        .parse()
        .unwrap_or_else(|_| panic!("group must be numeric, got {user}"));
    assert!(uid != 0 && gid != 0, "non-root: {user}");
    let values: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(Path::new(ROOT).join("charts/sales-order-operator/values.yaml"))
            .unwrap(),
    )
    .unwrap();
    for ctx in ["podSecurityContext", "securityContext"] {
        assert_eq!(
            values[ctx]["runAsUser"].as_u64(),
            Some(u64::from(uid)),
            "chart {ctx}.runAsUser matches USER"
        );
        assert_eq!(values[ctx]["runAsNonRoot"].as_bool(), Some(true));
    }
    // The port the chart probes.
    let port = values["httpPort"].as_u64().unwrap().to_string();
    assert!(last.all("EXPOSE").any(|e| {
        e.split_whitespace()
            .any(|p| p.trim_end_matches("/tcp") == port)
    }));
}

#[test]
fn image_carries_oci_labels() {
    let stages = dockerfile();
    let labels: String = stages
        .last()
        .unwrap()
        .all("LABEL")
        .collect::<Vec<_>>()
        .join(" ");
    for key in ["title", "description", "version", "revision", "source"] {
        assert!(
            labels.contains(&format!("org.opencontainers.image.{key}=")),
            "missing OCI label {key}: {labels}"
        );
    }
}

#[test]
fn dockerignore_keeps_what_the_build_needs() {
    let ignore = std::fs::read_to_string(Path::new(ROOT).join(".dockerignore"))
        .expect(".dockerignore exists");
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_end_matches('/'))
        .collect();
    for must in ["target", ".git"] {
        assert!(
            patterns.contains(&must),
            ".dockerignore should exclude {must}"
        );
    }
    // Every workspace member (cargo loads them all for --locked) and the lock file stay.
    let manifest: toml_like::Members =
        toml_like::members(&std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).unwrap());
    for keep in manifest.iter().map(String::as_str).chain([
        "Cargo.toml",
        "Cargo.lock",
        // jemalloc's compiled-in options.
        ".cargo",
        "src",
        "tests",
        "benches",
        "examples",
        "build.rs",
    ]) {
        let keep = keep.trim_start_matches("./");
        if keep == "." {
            continue;
        }
        assert!(
            !patterns
                .iter()
                .any(|p| *p == keep || keep.starts_with(&format!("{p}/"))),
            ".dockerignore excludes {keep}"
        );
    }
}

/// The `[workspace] members` array, without a TOML dependency.
mod toml_like {
    pub type Members = Vec<String>;
    pub fn members(manifest: &str) -> Members {
        let at = manifest.find("members").expect("workspace members");
        let open = at + manifest[at..].find('[').unwrap();
        let close = open + manifest[open..].find(']').unwrap();
        manifest[open + 1..close]
            .split(',')
            .map(|m| m.trim().trim_matches('"').to_owned())
            .filter(|m| !m.is_empty())
            .collect()
    }
}

#[test]
#[ignore = "a full release build for the musl target (needs musl-gcc); run with --ignored"]
fn release_build_produces_the_copied_path() {
    let stages = dockerfile();
    let (from, src, _) = copied_binary(&stages);
    let builder = stages
        .iter()
        .find(|s| s.name.as_deref() == Some(&from))
        .unwrap();
    let cargo = cargo_build(builder);
    let workdir = builder.last("WORKDIR").unwrap().trim_end_matches('/');
    let status = Command::new(env!("CARGO"))
        .args(&cargo[1..])
        .current_dir(ROOT)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "{cargo:?} failed");
    let local = Path::new(ROOT).join(src.strip_prefix(&format!("{workdir}/")).unwrap());
    assert!(
        local.is_file(),
        "{} missing after {cargo:?}",
        local.display()
    );
    let file = Command::new("file")
        .arg(&local)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    if let Ok(desc) = file {
        assert!(
            desc.contains("statically linked") || desc.contains("static-pie"),
            "{desc}"
        );
    }
}
