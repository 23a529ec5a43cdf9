//! Whatever arrives as a bearer token, the extractor never panics, never lets it through, and
//! answers 401 `invalid_token`: random text, random JOSE headers and claims around a random
//! signature, and every truncation of a valid token. Whatever arrives as a DPoP proof beside a
//! valid DPoP-bound token is refused too, with 401 or 400 and never a 5xx. A bounded number of
//! cases keeps this in the normal test run.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::Request;
use axum::response::IntoResponse;
use playbook_dpop::ProofKey;
use playbook_forge::{b64_json, keycloak_like_claims};
use playbook_resource_server::api::ReadUsers;
use playbook_resource_server::policy::{Auth, Dpop, Refusal};
use playbook_resource_server::{
    Algorithm, Authorized, BindingMode, DpopConfig, JwksCache, Validator, ValidatorConfig,
};
use proptest::prelude::*;
use serde_json::{Value, json};
use url::Url;

use crate::support::{KEY, KID};

const ISSUER: &str = "https://localhost:9443/realms/properties";
/// The request every case makes, with a `Host` so that a proof's `htu` can match it.
const API: &str = "https://localhost:8443/api/users";

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
});

/// The real validator with the test key preloaded. Its JWKS URL answers nothing, so an unknown
/// kid costs one failed refresh per interval and never finds a key.
static AUTH: LazyLock<Arc<Auth>> = LazyLock::new(|| {
    let keys = JwksCache::new(
        reqwest::Client::new(),
        Url::parse("https://127.0.0.1:9/jwks").unwrap(),
        vec![Algorithm::RS256],
        Duration::from_secs(3600),
    );
    keys.preload(json!({ "keys": [KEY.jwk("sig")] }).to_string().as_bytes())
        .unwrap();
    let config = ValidatorConfig {
        issuer: ISSUER.into(),
        audience: playbook_resource_server::AUDIENCE.into(),
        algorithms: vec![Algorithm::RS256],
        leeway: Duration::from_secs(5),
        verified_cache_capacity: playbook_resource_server::VERIFIED_CACHE_CAPACITY,
    };
    Arc::new(Auth {
        validator: Validator::new(config, Arc::new(keys)),
        binding: BindingMode::WhenPresent,
        introspector: None,
        client_cert: Default::default(),
        ca_pem: String::new(),
        dpop: Some(Dpop::new(&DpopConfig::default())),
        public_url: None,
        thumbprints: Default::default(),
    })
});

/// The extractor's verdict on `Authorization: Bearer <token>` for `GET /api/users`.
fn extract(token: &str) -> Result<Authorized<ReadUsers>, Refusal> {
    extract_with(&format!("Bearer {token}"), None)
}

/// The extractor's verdict on `Authorization: <authorization>` with a `DPoP` header, if any.
fn extract_with(
    authorization: &str,
    proof: Option<&str>,
) -> Result<Authorized<ReadUsers>, Refusal> {
    let mut request = Request::get(API).header("authorization", authorization);
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    let (mut parts, ()) = request.body(()).unwrap().into_parts();
    RUNTIME.block_on(Authorized::<ReadUsers>::from_request_parts(
        &mut parts,
        &AUTH.clone(),
    ))
}

/// What the extractor answers for `Authorization: Bearer <token>`: status and challenge.
fn answer(token: &str) -> (u16, String) {
    let Err(rejection) = extract(token) else {
        panic!("a made-up token was accepted: {token}");
    };
    let response = rejection.into_response();
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    (response.status().as_u16(), challenge)
}

fn assert_rejected(token: &str) {
    let (status, challenge) = answer(token);
    assert_eq!(status, 401, "{token}");
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JOSE header: a plausible or hostile `alg`, our kid or another, and any extra members
/// (`crit`, `jku`, `jwk`, `x5c`, or noise).
fn header() -> impl Strategy<Value = Value> {
    let alg = prop_oneof![
        Just(json!("RS256")),
        Just(json!("none")),
        Just(json!("HS256")),
        Just(json!("ES256")),
        Just(json!("PS512")),
        json_value(),
    ];
    let kid = prop_oneof![Just(json!(KID)), json_value()];
    let extra = prop::collection::btree_map(
        prop_oneof![
            Just("crit".to_owned()),
            Just("jku".to_owned()),
            Just("jwk".to_owned()),
            Just("x5c".to_owned()),
            Just("typ".to_owned()),
            "[a-z]{1,5}"
        ],
        json_value(),
        0..3,
    );
    (alg, kid, extra).prop_map(|(alg, kid, extra)| {
        let mut header: serde_json::Map<String, Value> = extra.into_iter().collect();
        header.insert("alg".into(), alg);
        header.insert("kid".into(), kid);
        Value::Object(header)
    })
}

/// Keycloak-like claims with some members replaced by arbitrary values of any type.
fn claims() -> impl Strategy<Value = Value> {
    let names = prop::sample::subsequence(
        vec![
            "iss",
            "aud",
            "exp",
            "nbf",
            "iat",
            "typ",
            "scope",
            "realm_access",
            "cnf",
            "sub",
        ],
        0..4,
    );
    (names, prop::collection::vec(json_value(), 4)).prop_map(|(names, values)| {
        let mut claims = keycloak_like_claims(ISSUER);
        for (name, value) in names.into_iter().zip(values) {
            claims[name] = value;
        }
        claims
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bearer_text_is_rejected(token in "[A-Za-z0-9._~+/=-]{1,400}") {
        assert_rejected(&token);
    }

    #[test]
    fn random_headers_and_claims_with_a_random_signature_are_rejected(
        header in header(),
        claims in claims(),
        signature in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        use base64::Engine;
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature);
        assert_rejected(&format!("{}.{}.{signature}", b64_json(&header), b64_json(&claims)));
    }

    #[test]
    fn every_truncation_of_a_valid_token_is_rejected(cut in 0.0f64..1.0) {
        static VALID: LazyLock<String> = LazyLock::new(|| KEY.sign(&keycloak_like_claims(ISSUER)));
        let end = 1 + ((VALID.len() - 1) as f64 * cut) as usize;
        prop_assume!(end < VALID.len());
        assert_rejected(&VALID[..end]);
    }
}

/// The client's proof key, and a valid token bound to it.
static DPOP: LazyLock<(ProofKey, String)> = LazyLock::new(|| {
    let key = ProofKey::generate().unwrap();
    let mut claims = keycloak_like_claims(ISSUER);
    claims["cnf"] = json!({ "jkt": key.thumbprint() });
    let token = KEY.sign(&claims);
    (key, token)
});

/// A proof made by the client's key with these claims, some replaced by arbitrary values.
fn proof_claims() -> impl Strategy<Value = Value> {
    let names = prop::sample::subsequence(vec!["jti", "htm", "htu", "iat", "ath", "nonce"], 0..3);
    (names, prop::collection::vec(json_value(), 3)).prop_map(|(names, values)| {
        let url = Url::parse(API).unwrap();
        let fresh = playbook_dpop::ProofClaims::new("GET", &url, Some(&DPOP.1), None);
        let mut claims = serde_json::to_value(fresh).unwrap();
        for (name, value) in names.into_iter().zip(values) {
            claims[name] = value;
        }
        claims
    })
}

fn assert_proof_refused(proof: &str) {
    let (_, token) = &*DPOP;
    let Err(refusal) = extract_with(&format!("DPoP {token}"), Some(proof)) else {
        panic!("a made-up proof was accepted: {proof}");
    };
    let status = refusal.into_response().status().as_u16();
    assert!(status == 401 || status == 400, "{status} for {proof}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_proof_text_is_refused(proof in "[A-Za-z0-9._~+/=-]{0,400}") {
        assert_proof_refused(&proof);
    }

    #[test]
    fn random_proof_headers_and_claims_are_refused(
        header in header(),
        claims in proof_claims(),
        signature in prop::collection::vec(any::<u8>(), 0..100),
    ) {
        use base64::Engine;
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature);
        assert_proof_refused(&format!("{}.{}.{signature}", b64_json(&header), b64_json(&claims)));
    }
}

/// The property tests are only worth something if the same path accepts a real token, and a
/// real proof.
#[test]
fn the_same_path_accepts_a_valid_token() {
    assert!(extract(&KEY.sign(&keycloak_like_claims(ISSUER))).is_ok());
    let (key, token) = &*DPOP;
    let proof = key
        .proof("GET", &Url::parse(API).unwrap(), Some(token), None)
        .unwrap();
    assert!(extract_with(&format!("DPoP {token}"), Some(&proof)).is_ok());
}
