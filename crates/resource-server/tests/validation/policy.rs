//! Role and scope policy: 403 insufficient_scope, with whole-token scope matching.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn client_role_of_the_same_name_does_not_count() {
    let fx = Fixture::new().await;
    let mut claims = fx.claims();
    claims["realm_access"] = json!({ "roles": ["default-roles"] });
    claims["resource_access"] =
        json!({ "oauth2-playbook-resource-server": { "roles": ["oauth2-playbook-readonly"] } });
    let (status, challenge) = fx.get(Some(&sign(&claims)), false).await;
    assert_insufficient_scope((status, challenge.clone()));
    assert!(challenge.contains("requires realm role"), "{challenge}");
}

#[tokio::test]
async fn scope_users_readonly_is_not_users_read() {
    let fx = Fixture::new().await;
    let mut claims = fx.claims();
    claims["scope"] = json!("profile users:readonly");
    assert_insufficient_scope(fx.get(Some(&sign(&claims)), false).await);
}

#[tokio::test]
async fn users_admin_also_reads() {
    let fx = Fixture::new().await;
    let mut claims = fx.claims();
    claims["scope"] = json!("users:admin");
    assert_eq!(fx.get(Some(&sign(&claims)), false).await.0, 200);
}

#[tokio::test]
async fn writes_need_a_write_scope_and_validate_the_body() {
    let fx = Fixture::new().await;
    let reader = sign(&fx.claims());
    let http = playbook_https::https_client(&fx.certs.ca_pem).unwrap();
    let url = fx.server.base_url().join("/api/user").unwrap();
    let post = |token: String, body: serde_json::Value| {
        http.post(url.clone()).bearer_auth(token).json(&body).send()
    };
    let response = post(
        reader,
        json!({ "name": "Grace", "email": "grace@example.org" }),
    )
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(r#"scope="write:user users:admin""#)
    );

    let mut claims = fx.claims();
    claims["scope"] = json!("write:user");
    let writer = sign(&claims);
    let bad = post(
        writer.clone(),
        json!({ "name": "", "email": "grace@example.org" }),
    )
    .await
    .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let unknown_field = post(
        writer.clone(),
        json!({ "name": "G", "email": "g@example.org", "admin": true }),
    )
    .await
    .unwrap();
    assert_eq!(unknown_field.status().as_u16(), 400);
    let created = post(
        writer,
        json!({ "name": "Grace", "email": "grace@example.org" }),
    )
    .await
    .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let user: serde_json::Value = created.json().await.unwrap();

    let mut claims = fx.claims();
    claims["scope"] = json!("read:user");
    let (status, _) = fx
        .request(
            &format!("/api/user/{}", user["id"].as_str().unwrap()),
            Some(&sign(&claims)),
            false,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = fx
        .request(
            "/api/user/00000000-0000-0000-0000-000000000000",
            Some(&sign(&claims)),
            false,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = fx
        .request("/api/user/not-a-uuid", Some(&sign(&claims)), false)
        .await;
    assert_eq!(status, 400);
}

/// A body far over the limit, streamed over HTTP/1.1 as curl sends it, is answered 413 every
/// time (the server reads it in frames and stops counting past the limit).
#[tokio::test]
async fn a_large_refused_body_still_gets_its_413_read() {
    let fx = Fixture::new().await;
    let mut claims = fx.claims();
    claims["scope"] = json!("write:user");
    let ca = reqwest::Certificate::from_pem(fx.certs.ca_pem.as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([ca])
        .http1_only()
        .build()
        .unwrap();
    for _ in 0..5 {
        let response = http
            .post(fx.server.base_url().join("/api/user").unwrap())
            .bearer_auth(sign(&claims))
            .header("content-type", "application/json")
            .body(vec![b'x'; 900 * 1024])
            .send()
            .await
            .expect("the 413 is read, not a broken pipe");
        assert_eq!(response.status().as_u16(), 413);
    }
}

#[tokio::test]
async fn oversized_body_is_refused_before_parsing() {
    let fx = Fixture::new().await;
    let mut claims = fx.claims();
    claims["scope"] = json!("write:user");
    let http = playbook_https::https_client(&fx.certs.ca_pem).unwrap();
    let response = http
        .post(fx.server.base_url().join("/api/user").unwrap())
        .bearer_auth(sign(&claims))
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"name":"{}","email":"a@b.co"}}"#,
            "x".repeat(100_000)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
}
