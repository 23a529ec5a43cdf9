//! The container backend's image: the optimized Keycloak image of `oauth2-provider/Dockerfile`,
//! built on first use when it is missing.
//!
//! The build is `scripts/build-keycloak-image.sh`, compiled into this crate so that a `cargo
//! test` or a `playbook` binary away from the repository can run it too. It bases the image on
//! the official one when a registry serves it, else on a local Debian + JRE stand-in made with
//! debootstrap; either way the Keycloak distribution comes from the native backend's cache.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::options::{Database, build_options};
use crate::{KEYCLOAK_IMAGE, KEYCLOAK_VERSION, Progress, ProviderConfig, ProviderError};

/// The build's files, laid out as in the repository so the script finds its Dockerfiles.
const FILES: [(&str, &str); 3] = [
    (
        "scripts/build-keycloak-image.sh",
        include_str!("../../../scripts/build-keycloak-image.sh"),
    ),
    (
        "oauth2-provider/Dockerfile",
        include_str!("../../../oauth2-provider/Dockerfile"),
    ),
    (
        "oauth2-provider/offline-base.Dockerfile",
        include_str!("../../../oauth2-provider/offline-base.Dockerfile"),
    ),
];

/// The image to run: the one asked for, or ours tagged with the pinned version.
pub(crate) fn name(args: &ProviderConfig) -> String {
    args.image
        .clone()
        .unwrap_or_else(|| format!("{KEYCLOAK_IMAGE}:{KEYCLOAK_VERSION}"))
}

/// Makes sure the image exists in the local engine, building ours if it does not. An image the
/// user named is theirs to provide.
pub(crate) fn ensure(
    args: &ProviderConfig,
    progress: &dyn Progress,
) -> Result<String, ProviderError> {
    let image = name(args);
    let found = environment(&image).map(|env| baked_in(&image, &env));
    match (found, args.image.is_some()) {
        (Some(Ok(())), _) => return Ok(image),
        // An image the user named is theirs to rebuild; ours is rebuilt when it predates a
        // build option (the playbook's own upgrade).
        (Some(Err(error)), true) => return Err(error),
        (None, true) => return Err(ProviderError::ImageMissing { image }),
        (Some(Err(error)), false) => {
            progress.stage(&format!("{error}; building it again"));
        }
        (None, false) => {}
    }
    let tarball = crate::distribution::tarball(args, progress)?;
    progress.stage(&format!(
        "building the Keycloak image {image} (once; a few minutes without a registry)"
    ));
    build(&image, &tarball, progress)?;
    progress.finished(&format!("built the Keycloak image {image}"));
    Ok(image)
}

/// The image's environment, one `NAME=value` a line, or `None` when the engine lacks the image.
fn environment(image: &str) -> Option<String> {
    let output = Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "{{range .Config.Env}}{{println .}}{{end}}",
        ])
        .arg(image)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `start --optimized` fails obscurely on an image built with other build options (the official
/// image, say); this says which are missing instead.
fn baked_in(image: &str, env: &str) -> Result<(), ProviderError> {
    let missing: Vec<String> = build_options(Database::DevMem)
        .iter()
        .map(|option| {
            let (name, value) = option.env();
            format!("{name}={value}")
        })
        .filter(|setting| !env.lines().any(|line| line == setting))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ProviderError::ImageNotOptimized {
            image: image.into(),
            missing: missing.join(" "),
        })
    }
}

fn build(image: &str, tarball: &Path, progress: &dyn Progress) -> Result<(), ProviderError> {
    let dir = tempfile::tempdir().map_err(ProviderError::io("create", std::env::temp_dir()))?;
    for (path, text) in FILES {
        let file = dir.path().join(path);
        std::fs::create_dir_all(file.parent().expect("files live in folders"))
            .map_err(ProviderError::io("create", &file))?;
        std::fs::write(&file, text).map_err(ProviderError::io("write", &file))?;
    }
    let script = dir.path().join(FILES[0].0);
    let mut child = Command::new("bash")
        .arg(&script)
        .arg(tarball)
        .env("KEYCLOAK_VERSION", KEYCLOAK_VERSION)
        .env("KEYCLOAK_IMAGE", image)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(ProviderError::io("run", &script))?;
    // The script's own `[image] …` lines are its stages; the rest is kept for a failure message.
    let mut said = Vec::new();
    for line in BufReader::new(child.stderr.take().expect("piped")).lines() {
        let line = line.map_err(ProviderError::io("read the output of", &script))?;
        match line.strip_prefix("[image] ") {
            Some(stage) => progress.stage(stage),
            None => said.push(line),
        }
    }
    let status = child.wait().map_err(ProviderError::io("run", &script))?;
    if status.success() {
        return Ok(());
    }
    Err(ProviderError::ImageBuildFailed {
        image: image.into(),
        reason: status.to_string(),
        tail: said[said.len().saturating_sub(15)..].join("\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> &'static str {
        FILES.iter().find(|(p, _)| *p == path).expect("embedded").1
    }

    /// The Dockerfile cannot read `options.rs`; this holds it to the same build options.
    #[test]
    fn the_dockerfile_bakes_in_the_backends_build_options() {
        let dockerfile = file("oauth2-provider/Dockerfile");
        for option in build_options(Database::DevMem) {
            let (name, value) = option.env();
            assert!(
                dockerfile.contains(&format!("{name}={value}")),
                "oauth2-provider/Dockerfile lacks {name}={value}"
            );
        }
        let official = format!("{}:{KEYCLOAK_VERSION}", crate::OFFICIAL_IMAGE);
        assert!(dockerfile.contains(&format!("ARG KEYCLOAK_BASE={official}")));
    }

    #[test]
    fn an_image_without_the_build_options_is_refused_with_what_it_lacks() {
        let ours = "PATH=/usr/bin\nKC_HEALTH_ENABLED=true\nKC_HTTPS_CLIENT_AUTH=request\nKC_DB=dev-mem\nKC_FEATURES=spiffe\n";
        assert!(baked_in("ours", ours).is_ok());
        // An image of ours from before a build option: what it lacks is named (and
        // `ensure` builds it again).
        let older = "KC_HEALTH_ENABLED=true\nKC_HTTPS_CLIENT_AUTH=request\nKC_DB=dev-mem\n";
        let said = baked_in("ours", older).unwrap_err().to_string();
        assert!(said.contains("KC_FEATURES=spiffe"), "{said}");
        let official = "PATH=/usr/bin\nKC_RUN_IN_CONTAINER=true\n";
        let refused = baked_in("quay.io/keycloak/keycloak:26.7.3", official).unwrap_err();
        let said = refused.to_string();
        assert!(said.contains("KC_HTTPS_CLIENT_AUTH=request"), "{said}");
        assert!(said.contains("oauth2-provider/Dockerfile"), "{said}");
    }

    #[test]
    fn the_script_names_the_images_the_provider_names() {
        let script = file("scripts/build-keycloak-image.sh");
        assert!(script.contains(&format!(
            "official={}:$KEYCLOAK_VERSION",
            crate::OFFICIAL_IMAGE
        )));
        assert!(script.contains(&format!(
            "${{KEYCLOAK_IMAGE:-{KEYCLOAK_IMAGE}:$KEYCLOAK_VERSION}}"
        )));
    }
}
