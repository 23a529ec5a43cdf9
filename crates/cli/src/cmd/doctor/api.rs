//! The check that asks the resource server: ready, and accepting the token it is shown, over
//! the client's own mutual-TLS connection.

use playbook_client::{AccessToken, ResourceApi};
use playbook_resource_server::api::{LIST_USERS, READY};
use url::Url;

use super::Parties;
use super::verdict::{Misconfigured, Unreachable, Verdict, fail};

pub async fn resource_server(
    parties: &Parties,
    api: &Url,
    asked: bool,
    token: &AccessToken,
) -> Verdict {
    let ready_url = api.join(READY).expect("a static path");
    let ready = match parties.http.get(ready_url.clone()).send().await {
        Ok(response) => response.status(),
        Err(error) if !asked && error.is_connect() => {
            return Verdict::Skipped(
                "a running resource server (`cargo playbook resource-server`, or --api-url)",
            );
        }
        Err(error) => {
            return fail(
                Unreachable,
                format!("cannot reach {api}: {}", playbook_https::describe(&error)),
                "start it with `cargo playbook resource-server`",
            );
        }
    };
    if !ready.is_success() {
        return fail(
            Unreachable,
            format!("{ready_url} answered {ready}: it has no signing keys yet"),
            format!(
                "check its --issuer and that Keycloak runs; it retries every {} s",
                playbook_resource_server::RETRY_INTERVAL.as_secs()
            ),
        );
    }
    let route = format!("{} {}", LIST_USERS.method, LIST_USERS.path);
    let answer = ResourceApi::new(api.clone(), parties.tokens.clone())
        .get_with(LIST_USERS.path, token.expose())
        .await;
    match answer {
        Ok(answer) if answer.status == 200 => Verdict::Pass(format!(
            "{api} is ready and accepts the token ({route}: 200)"
        )),
        Ok(answer) => fail(
            Misconfigured,
            format!(
                "{route} answered {}: {}",
                answer.status,
                answer.www_authenticate.unwrap_or_default()
            ),
            "the lines above say which part of the token it refuses",
        ),
        Err(error) => fail(
            Unreachable,
            playbook_https::describe(&error),
            "is it still running?",
        ),
    }
}
