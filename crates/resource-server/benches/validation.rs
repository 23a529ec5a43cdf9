//! Cost of validating a token with warm keys, against the floor: one raw RS256 verification of
//! the same token with the same parsed key (the goal is a ratio close to 1: see docs/benchmarks.md), and
//! the cost for a token the server has already verified (the steady state of a client that
//! reuses its token).

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use playbook_forge::{SigningKey as TestKey, keycloak_like_claims};
use playbook_resource_server::{Algorithm, JwksCache, Validator, ValidatorConfig};
use url::Url;

const ISSUER: &str = "https://localhost:9443/realms/oauth2-playbook";

fn validation(c: &mut Criterion) {
    let key = TestKey::generate("bench");
    let token = key.sign(&keycloak_like_claims(ISSUER));
    let jwks = serde_json::json!({ "keys": [key.jwk("sig")] });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    // Never fetched: the kid is preloaded, which is the steady state of a running server.
    let keys = JwksCache::new(
        http,
        Url::parse("https://localhost:1/unused").unwrap(),
        vec![Algorithm::RS256],
        Duration::from_secs(30),
    );
    keys.preload(jwks.to_string().as_bytes()).unwrap();
    let validator = Validator::new(
        ValidatorConfig {
            issuer: ISSUER.into(),
            audience: playbook_resource_server::AUDIENCE.into(),
            algorithms: vec![Algorithm::RS256],
            leeway: Duration::from_secs(30),
            verified_cache_capacity: playbook_resource_server::VERIFIED_CACHE_CAPACITY,
        },
        Arc::new(keys),
    );
    assert!(runtime.block_on(validator.validate(&token)).is_ok());

    let jwk = key.jwk("sig");
    let component = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
    let raw_key: ParsedPublicKey = RsaPublicKeyComponents {
        n: component("n"),
        e: component("e"),
    }
    .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
    .unwrap();
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();

    let decoding =
        jsonwebtoken::DecodingKey::from_jwk(&serde_json::from_value(jwk.clone()).unwrap()).unwrap();
    let signature_b64 = token.rsplit_once('.').unwrap().1;

    let mut group = c.benchmark_group("token");
    group.bench_function("raw RS256 verify", |b| {
        b.iter(|| raw_key.verify_sig(signed.as_bytes(), &signature).unwrap())
    });
    group.bench_function("jsonwebtoken RS256 verify of the JWK", |b| {
        b.iter(|| {
            assert!(
                jsonwebtoken::crypto::verify(
                    signature_b64,
                    signed.as_bytes(),
                    &decoding,
                    jsonwebtoken::Algorithm::RS256
                )
                .unwrap()
            )
        })
    });
    group.bench_function("full validation (warm keys)", |b| {
        b.iter(|| {
            runtime
                .block_on(validator.validate_uncached(&token))
                .unwrap()
        })
    });
    group.bench_function("validation of a token seen before", |b| {
        b.iter(|| runtime.block_on(validator.validate(&token)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, validation);
criterion_main!(benches);
