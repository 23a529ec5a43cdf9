//! Getting a built Keycloak install: find or fetch the distribution, unpack it, `kc.sh build` it.
//!
//! Everything lands in the per-user cache, keyed by version and build options, so only the first
//! run pays for the download (~170 MB) and the build (~30 s); later starts use `start --optimized`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Topology;
use crate::error::tail;
use crate::java::Java;
use crate::options::{Database, KcOption, build_options, proxy_build_options};
use crate::{KEYCLOAK_VERSION, Progress, ProviderConfig, ProviderError};

/// The build-time flags of the cached build; part of the cache key.
fn build_flags(topology: Topology) -> Vec<String> {
    let database = match topology {
        Topology::Cluster => Database::Postgres,
        Topology::Direct | Topology::Proxy => Database::DevFile,
    };
    build_options(database)
        .into_iter()
        .chain(proxy_build_options(topology))
        .collect::<Vec<_>>()
        .iter()
        .map(KcOption::flag)
        .collect()
}

/// Marks a finished build; a directory without it is a build that was interrupted.
const BUILT_MARKER: &str = ".playbook-built";

/// Returns the home of a built Keycloak, doing whatever of fetch/unpack/build is still needed.
pub(crate) fn built_install(
    args: &ProviderConfig,
    java: &Java,
    progress: &dyn Progress,
) -> Result<PathBuf, ProviderError> {
    let version_dir = version_dir(args);
    let home = version_dir.join(format!("build-{}", build_key(args.topology)));
    if home.join(BUILT_MARKER).is_file() {
        return Ok(home);
    }
    fs::create_dir_all(&version_dir).map_err(ProviderError::io("create", &version_dir))?;
    let source = source(args, &version_dir, progress)?;

    // One staging directory per build, not per process: a test run builds the proxy's and the
    // cluster's Keycloak at once, and each must not clear the other's.
    let staging_dir = tempfile::Builder::new()
        .prefix("staging-")
        .tempdir_in(&version_dir)
        .map_err(ProviderError::io("create a directory in", &version_dir))?;
    let staging = staging_dir.path();
    progress.stage(&format!("unpacking Keycloak {KEYCLOAK_VERSION}"));
    let unpacked = match &source {
        Source::Tarball(tarball) => unpack(tarball, staging)?,
        Source::Directory(dir) => {
            let copy = staging.join("keycloak");
            copy_dir(dir, &copy)?;
            copy
        }
    };
    progress.stage(&format!(
        "building Keycloak {KEYCLOAK_VERSION} (once per cache)"
    ));
    let built = build(
        &unpacked,
        java,
        &version_dir.join(format!("build-{}.log", build_key(args.topology))),
        args.topology,
    );
    let marked = built.and_then(|()| {
        let marker = unpacked.join(BUILT_MARKER);
        fs::write(&marker, build_flags(args.topology).join(" "))
            .map_err(ProviderError::io("write", marker))
    });
    // Another process may have finished the same build meanwhile: theirs is as good as ours.
    if marked.is_ok() {
        let _ = fs::rename(&unpacked, &home);
    }
    marked?;
    progress.finished(&format!(
        "Keycloak {KEYCLOAK_VERSION} built in {}",
        home.display()
    ));
    Ok(home)
}

/// The distribution as a tarball, fetched if need be: what a container image build copies in.
pub(crate) fn tarball(
    args: &ProviderConfig,
    progress: &dyn Progress,
) -> Result<PathBuf, ProviderError> {
    let version_dir = version_dir(args);
    fs::create_dir_all(&version_dir).map_err(ProviderError::io("create", &version_dir))?;
    match source(args, &version_dir, progress)? {
        Source::Tarball(tarball) => Ok(tarball),
        Source::Directory(dir) => Err(ProviderError::DistributionUnavailable {
            version: KEYCLOAK_VERSION.into(),
            tried: format!(
                "PLAYBOOK_KEYCLOAK_DIST={} is a directory, and an image build needs the .tar.gz",
                dir.display()
            ),
        }),
    }
}

/// Whether the pinned version is already built or downloaded here (then no download is needed).
pub(crate) fn is_cached(args: &ProviderConfig) -> bool {
    let version_dir = version_dir(args);
    version_dir
        .join(format!("build-{}", build_key(args.topology)))
        .join(BUILT_MARKER)
        .is_file()
        || version_dir
            .join(format!("keycloak-{KEYCLOAK_VERSION}.tar.gz"))
            .is_file()
}

/// Where everything of the pinned version is cached.
fn version_dir(args: &ProviderConfig) -> PathBuf {
    args.resolved_cache_dir()
        .join("keycloak")
        .join(KEYCLOAK_VERSION)
}

/// A short, stable hash of the version and build options.
fn build_key(topology: Topology) -> String {
    let text = format!("{KEYCLOAK_VERSION} {}", build_flags(topology).join(" "));
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    digest.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

enum Source {
    Tarball(PathBuf),
    Directory(PathBuf),
}

/// The distribution, in the documented order: explicit path, cache, Maven, GitHub release.
fn source(
    args: &ProviderConfig,
    version_dir: &Path,
    progress: &dyn Progress,
) -> Result<Source, ProviderError> {
    if let Some(dist) = &args.dist {
        return if dist.is_dir() {
            Ok(Source::Directory(dist.clone()))
        } else if dist.is_file() {
            Ok(Source::Tarball(dist.clone()))
        } else {
            Err(ProviderError::DistributionUnavailable {
                version: KEYCLOAK_VERSION.into(),
                tried: format!(
                    "PLAYBOOK_KEYCLOAK_DIST={} (no such file or directory)",
                    dist.display()
                ),
            })
        };
    }
    let cached = version_dir.join(format!("keycloak-{KEYCLOAK_VERSION}.tar.gz"));
    if cached.is_file() {
        return Ok(Source::Tarball(cached));
    }
    let mut tried = Vec::new();
    progress.stage(&format!(
        "downloading Keycloak {KEYCLOAK_VERSION} with Maven"
    ));
    match from_maven(version_dir, &cached) {
        Ok(()) => return Ok(Source::Tarball(cached)),
        Err(why) => tried.push(format!("Maven ({why})")),
    }
    progress.stage(&format!(
        "downloading Keycloak {KEYCLOAK_VERSION} from its GitHub release"
    ));
    match from_github(&cached) {
        Ok(()) => return Ok(Source::Tarball(cached)),
        Err(why) => tried.push(format!("GitHub release ({why})")),
    }
    Err(ProviderError::DistributionUnavailable {
        version: KEYCLOAK_VERSION.into(),
        tried: tried.join("; "),
    })
}

/// `mvn dependency:copy` of `org.keycloak:keycloak-quarkus-dist:<version>:tar.gz`.
fn from_maven(version_dir: &Path, target: &Path) -> Result<(), String> {
    let out = version_dir.join(format!("maven-{}", std::process::id()));
    let output = Command::new("mvn")
        .args(["-q", "-B", "dependency:copy"])
        .arg(format!(
            "-Dartifact=org.keycloak:keycloak-quarkus-dist:{KEYCLOAK_VERSION}:tar.gz"
        ))
        .arg(format!("-DoutputDirectory={}", out.display()))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run mvn: {e}"))?;
    let file = out.join(format!("keycloak-quarkus-dist-{KEYCLOAK_VERSION}.tar.gz"));
    let result = if output.status.success() && file.is_file() {
        fs::rename(&file, target).map_err(|e| e.to_string())
    } else {
        // Maven reports on stdout ("[ERROR] ..."); a JVM that cannot start reports on stderr.
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last_line = |text: &str| {
            text.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::trim)
                .map(String::from)
        };
        let reason = stdout
            .lines()
            .rev()
            .find(|l| l.contains("ERROR"))
            .map(|l| l.trim().to_string())
            .or_else(|| last_line(&stderr))
            .or_else(|| last_line(&stdout))
            .unwrap_or_default();
        Err(format!("mvn {}: {reason}", output.status))
    };
    let _ = fs::remove_dir_all(&out);
    result
}

/// The release asset `keycloak-<version>.tar.gz`, over HTTPS with the system's public roots.
fn from_github(target: &Path) -> Result<(), String> {
    let url = format!(
        "https://github.com/keycloak/keycloak/releases/download/{v}/keycloak-{v}.tar.gz",
        v = KEYCLOAK_VERSION
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let bytes = runtime.block_on(async {
        let response = reqwest::get(&url)
            .await
            .map_err(|e| playbook_https::describe(&e))?;
        if !response.status().is_success() {
            return Err(format!("{url} answered {}", response.status()));
        }
        response.bytes().await.map_err(|e| e.to_string())
    })?;
    let partial = target.with_extension("part");
    fs::write(&partial, &bytes).map_err(|e| e.to_string())?;
    fs::rename(&partial, target).map_err(|e| e.to_string())
}

/// Unpacks the tarball into `target` and returns the directory holding `bin/kc.sh`.
fn unpack(tarball: &Path, target: &Path) -> Result<PathBuf, ProviderError> {
    let broken = |e: std::io::Error| ProviderError::DistributionUnavailable {
        version: KEYCLOAK_VERSION.into(),
        tried: format!(
            "{} is not a Keycloak tar.gz ({e}); delete it and retry",
            tarball.display()
        ),
    };
    let file = fs::File::open(tarball).map_err(ProviderError::io("open", tarball))?;
    // `Archive::unpack` refuses entries that would escape `target` (`..`, absolute paths).
    tar::Archive::new(flate2::read::GzDecoder::new(file))
        .unpack(target)
        .map_err(broken)?;
    fs::read_dir(target)
        .map_err(broken)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|dir| dir.join("bin/kc.sh").is_file())
        .ok_or_else(|| broken(std::io::Error::other("no bin/kc.sh inside")))
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), ProviderError> {
    fs::create_dir_all(to).map_err(ProviderError::io("create", to))?;
    for entry in fs::read_dir(from).map_err(ProviderError::io("read", from))? {
        let entry = entry.map_err(ProviderError::io("read", from))?;
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target).map_err(ProviderError::io("copy", entry.path()))?;
        }
    }
    Ok(())
}

fn build(home: &Path, java: &Java, log: &Path, topology: Topology) -> Result<(), ProviderError> {
    let log = log.to_path_buf();
    let log_file = fs::File::create(&log).map_err(ProviderError::io("create", &log))?;
    let flags = build_flags(topology);
    let mut command = Command::new(home.join("bin/kc.sh"));
    command
        .arg("build")
        .args(&flags)
        .env("JAVA", &java.path)
        .stdin(Stdio::null())
        .stdout(
            log_file
                .try_clone()
                .map_err(ProviderError::io("open", &log))?,
        )
        .stderr(log_file);
    let shown = format!("kc.sh build {}", flags.join(" "));
    let status = command
        .status()
        .map_err(ProviderError::io("run", home.join("bin/kc.sh")))?;
    if status.success() {
        Ok(())
    } else {
        Err(ProviderError::BuildFailed {
            command: shown,
            reason: status.to_string(),
            tail: tail(&log, 20),
            log,
        })
    }
}
