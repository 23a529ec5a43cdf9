//! What a sender constraint costs per request, through the whole extractor (the path every
//! request takes): a bearer token, a certificate-bound token with its certificate, and a
//! DPoP-bound token with a fresh proof, each token already verified once (the steady state of a
//! client that reuses its token). A DPoP request pays an ES256 proof check every time, by
//! design: a proof is single-use. Also the proof check alone, and the replay cache's memory when
//! a flood of distinct proofs fills it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::Request;
use axum_server::tls::TlsInfo;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use playbook_dpop::{ProofKey, ProofRules, REPLAY_CACHE_CAPACITY, ReplayCache, unix_now};
use playbook_forge::{SigningKey as TestKey, keycloak_like_claims};
use playbook_resource_server::api::ReadUsers;
use playbook_resource_server::policy::{Auth, Dpop};
use playbook_resource_server::{
    Algorithm, Authorized, BindingMode, DpopConfig, JwksCache, Validator, ValidatorConfig,
};
use serde_json::json;
use url::Url;

const ISSUER: &str = "https://localhost:9443/realms/oauth2-playbook";
const API: &str = "https://localhost:8443/api/users";

fn binding(c: &mut Criterion) {
    let signer = TestKey::generate("bench");
    let keys = JwksCache::new(
        reqwest::Client::new(),
        Url::parse("https://localhost:1/unused").unwrap(),
        vec![Algorithm::RS256],
        Duration::from_secs(30),
    );
    keys.preload(
        json!({ "keys": [signer.jwk("sig")] })
            .to_string()
            .as_bytes(),
    )
    .unwrap();
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
    let auth = Arc::new(Auth {
        validator,
        binding: BindingMode::WhenPresent,
        introspector: None,
        client_cert: Default::default(),
        ca_pem: String::new(),
        dpop: Some(Dpop::new(&DpopConfig::default())),
        public_url: None,
        thumbprints: Default::default(),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let certificate = playbook_certs::Authority::generate()
        .unwrap()
        .issue(&playbook_certs::LeafSpec::client("bench-client"))
        .unwrap();
    let der = playbook_certs::der::certificates(certificate.cert_pem()).unwrap()[0].to_vec();
    let proof_key = ProofKey::generate().unwrap();

    let bearer = signer.sign(&keycloak_like_claims(ISSUER));
    let mut claims = keycloak_like_claims(ISSUER);
    claims["cnf"] = json!({ "x5t#S256": playbook_certs::thumbprint_s256(&der) });
    let mtls = signer.sign(&claims);
    let mut claims = keycloak_like_claims(ISSUER);
    claims["cnf"] = json!({ "jkt": proof_key.thumbprint() });
    claims["typ"] = "DPoP".into();
    let dpop = signer.sign(&claims);

    let extract = |authorization: String, proof: Option<String>, peer: Option<&Vec<u8>>| {
        let mut request = Request::get(API).header("authorization", authorization);
        if let Some(proof) = proof {
            request = request.header("dpop", proof);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        if let Some(der) = peer {
            let mut info = TlsInfo::default();
            info.peer_certificates = vec![der.clone()];
            parts.extensions.insert(Arc::new(info));
        }
        runtime
            .block_on(Authorized::<ReadUsers>::from_request_parts(
                &mut parts,
                &auth.clone(),
            ))
            .is_ok()
    };
    let url = Url::parse(API).unwrap();
    let fresh_proof = || proof_key.proof("GET", &url, Some(&dpop), None).unwrap();
    // Each token verified once: what follows is the per-request cost of a reused token.
    assert!(extract(format!("Bearer {bearer}"), None, None));
    assert!(extract(format!("Bearer {mtls}"), None, Some(&der)));
    assert!(extract(format!("DPoP {dpop}"), Some(fresh_proof()), None));

    let mut group = c.benchmark_group("request");
    group.bench_function("bearer token", |b| {
        b.iter(|| assert!(extract(format!("Bearer {bearer}"), None, None)))
    });
    group.bench_function("certificate-bound token and its certificate", |b| {
        b.iter(|| assert!(extract(format!("Bearer {mtls}"), None, Some(&der))))
    });
    group.bench_function("DPoP-bound token and a fresh proof", |b| {
        b.iter_batched(
            fresh_proof,
            |proof| assert!(extract(format!("DPoP {dpop}"), Some(proof), None)),
            BatchSize::SmallInput,
        )
    });
    let rules = ProofRules::default();
    group.bench_function("the DPoP proof check alone", |b| {
        b.iter_batched(
            fresh_proof,
            |proof| {
                rules
                    .verify(&proof, "GET", &url, Some(&dpop), unix_now())
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("making a proof (the client's side)", |b| {
        b.iter(fresh_proof)
    });
    // The floor of a proof check: one ES256 verification with the key parsed once.
    let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .unwrap();
    let pair = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8.as_ref(),
    )
    .unwrap();
    let message = fresh_proof();
    let signature = pair
        .sign(&aws_lc_rs::rand::SystemRandom::new(), message.as_bytes())
        .unwrap();
    let public = aws_lc_rs::signature::ParsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
        aws_lc_rs::signature::KeyPair::public_key(&pair).as_ref(),
    )
    .unwrap();
    group.bench_function("raw ES256 verify (key parsed once)", |b| {
        b.iter(|| {
            public
                .verify_sig(message.as_bytes(), signature.as_ref())
                .unwrap()
        })
    });
    group.finish();

    // The replay cache under a flood of distinct proofs: full, and bounded.
    let cache = ReplayCache::new(Duration::from_secs(65), REPLAY_CACHE_CAPACITY);
    let jkt = proof_key.thumbprint();
    let mut refused = 0;
    for n in 0..REPLAY_CACHE_CAPACITY + 100_000 {
        if cache.check(jkt, &format!("jti-{n}")) != playbook_dpop::Replay::Fresh {
            refused += 1;
        }
    }
    println!(
        "replay cache after {} distinct proofs: {} remembered, {} refused (full), {:.1} MiB allocated",
        REPLAY_CACHE_CAPACITY + 100_000,
        cache.len(),
        refused,
        cache.allocated_bytes() as f64 / (1024.0 * 1024.0)
    );
}

criterion_group!(benches, binding);
criterion_main!(benches);
