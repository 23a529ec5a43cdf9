//! One renderer for every view of a run: the live page, the HTML and SVG hand-outs and the
//! mermaid text all come from here, so they cannot disagree.

use std::fmt::Write;

use playbook_trace::{Event, Exchange, Party, Run, SentView};
use serde::Serialize;

const PAGE_CSS: &str = include_str!("assets/stage.css");
const PAGE_JS: &str = include_str!("assets/stage.js");
const SVG_CSS: &str = include_str!("assets/diagram.css");

/// Diagram geometry, in SVG user units (the page scales the whole to its panel): each lifeline
/// has a column this wide, so the diagram widens with the parties a run involves.
const COLUMN: u32 = 330;
const HEADER: u32 = 64;
const STEP_ROW: u32 = 44;
const EXCHANGE_ROW: u32 = 70;
const LESSON_LINE: u32 = 26;
/// Characters per lesson line at the lesson's font size, per column of the diagram.
const LESSON_CHARS_PER_COLUMN: usize = 24;
/// The widest a lifeline's name box is; longer names are squeezed into it.
const ACTOR_BOX: u32 = 300;
/// Roughly how wide a label's character is at the label's font size, to keep labels on the page.
const LABEL_CHAR: u32 = 11;

/// Where each of a run's lifelines stands.
struct Columns(Vec<Party>);

impl Columns {
    fn of(run: &Run) -> Self {
        Self(run.parties())
    }

    fn width(&self) -> u32 {
        COLUMN * self.0.len() as u32
    }

    fn x(&self, party: Party) -> u32 {
        let column = self.0.iter().position(|p| *p == party).unwrap_or(0) as u32;
        COLUMN / 2 + COLUMN * column
    }
}

/// What a live page receives at each change: the whole view, so a page opened late catches up
/// with its first message.
#[derive(Serialize)]
pub struct View {
    pub svg: String,
    /// The lifelines' names alone, kept in view above the diagram however far it scrolls.
    pub lifelines: String,
    pub details: String,
    pub waiting_for: Option<String>,
    pub finished: Option<bool>,
    pub exchanges: usize,
    /// What the run is doing, in words.
    pub status: String,
    /// The choices of the question the room is asked now (predict mode).
    pub question: Option<Vec<String>>,
    /// How many in the room chose each (the presenter's page shows them).
    pub votes: Option<Vec<u32>>,
}

impl View {
    pub fn of(run: &Run) -> Self {
        let exchanges = run.exchanges().count();
        let status = match (&run.waiting_for, run.finished) {
            (_, Some(true)) => format!("Finished: {exchanges} exchanges, every step as expected."),
            (_, Some(false)) => format!("Stopped by an error after {exchanges} exchanges."),
            (Some(next), None) => format!("Next: {next}"),
            (None, None) => "Running…".into(),
        };
        Self {
            svg: svg(run),
            lifelines: lifelines(run),
            details: details(run),
            waiting_for: run.waiting_for.clone(),
            finished: run.finished,
            exchanges,
            status,
            question: run.open_question().map(|(_, choices)| choices.to_vec()),
            votes: None,
        }
    }
}

/// `&`, `<`, `>` and quotes escaped, for text and attribute values alike.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The request as an arrow has room for it: method and path, ids shortened.
pub fn request_label(exchange: &Exchange) -> String {
    let path = exchange
        .path()
        .split('?')
        .next()
        .unwrap_or_default()
        .replace("/protocol/openid-connect/", "/…/")
        .split('/')
        .enumerate()
        .map(|(i, segment)| match segment {
            // `/admin/realms/REALM/...`: the realm is known from the step; the rest matters.
            _ if i == 3 && path_starts_admin(exchange) => "…",
            _ if is_id(segment) => "{id}",
            _ => segment,
        })
        .collect::<Vec<_>>()
        .join("/");
    if exchange.reason.is_empty() {
        format!("{} {path}", exchange.method)
    } else {
        format!("{} {path} ({})", exchange.method, exchange.reason)
    }
}

fn path_starts_admin(exchange: &Exchange) -> bool {
    let path = exchange.path();
    path.starts_with("/admin/realms/") && path.matches('/').count() > 3
}

/// Keycloak's ids are UUIDs: noise on an arrow.
fn is_id(segment: &str) -> bool {
    segment.len() == 36 && segment.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// The answer as its arrow shows it.
pub fn answer_label(exchange: &Exchange) -> String {
    match exchange.status {
        Some(status) if exchange.answer.is_empty() => status.to_string(),
        Some(status) => format!("{status} {}", exchange.answer),
        None => "no answer".into(),
    }
}

/// `ok` (2xx), `refused` (4xx) or `failed` (5xx, no answer): the colour of the answer.
pub fn status_class(exchange: &Exchange) -> &'static str {
    match exchange.status {
        Some(200..=299) => "ok",
        Some(400..=499) => "refused",
        _ => "failed",
    }
}

/// Wrapping that breaks lines at spaces only: never inside a word, a URL or a thumbprint (the
/// terminal's wrapping uses it too).
pub fn word_wrap(width: usize) -> textwrap::Options<'static> {
    textwrap::Options::new(width)
        .break_words(false)
        .word_splitter(textwrap::WordSplitter::NoHyphenation)
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    textwrap::wrap(text, word_wrap(width))
        .into_iter()
        .map(String::from)
        .collect()
}

/// The sequence diagram as one standalone SVG document (it carries its own style, with the
/// page's theme variables taking over when it is shown inside the page).
pub fn svg(run: &Run) -> String {
    let columns = Columns::of(run);
    let width = columns.width();
    let mut body = String::new();
    let mut y = HEADER + 16;
    let mut n = 0;
    for event in &run.events {
        match event {
            Event::Step { title } => {
                let _ = write!(
                    body,
                    r#"<g class="step"><line x1="8" x2="{}" y1="{}" y2="{}"/><text x="12" y="{}">{}</text></g>"#,
                    width - 8,
                    y + 8,
                    y + 8,
                    y + 32,
                    escape(title)
                );
                y += STEP_ROW;
            }
            Event::Exchange(exchange) => {
                body.push_str(&exchange_svg(exchange, &columns, n, y));
                n += 1;
                y += EXCHANGE_ROW;
            }
            Event::Lesson { .. } | Event::Verdict { .. } | Event::Question { .. } => {
                let (class, text) = match event {
                    Event::Question { prompt, choices } => {
                        ("question", Event::question_line(prompt, choices))
                    }
                    Event::Verdict { held, text } => (
                        if *held {
                            "verdict held"
                        } else {
                            "verdict broken"
                        },
                        format!("{} {text}", Event::verdict_mark(*held)),
                    ),
                    Event::Lesson { text } => ("lesson", text.clone()),
                    _ => unreachable!("matched above"),
                };
                let lines = wrap(&text, LESSON_CHARS_PER_COLUMN * columns.0.len());
                let height = LESSON_LINE * lines.len() as u32 + 16;
                let _ = write!(
                    body,
                    r#"<g class="{class}"><rect x="40" y="{}" width="{}" height="{height}" rx="8"/>"#,
                    y + 4,
                    width - 80
                );
                for (i, line) in lines.iter().enumerate() {
                    let _ = write!(
                        body,
                        r#"<text x="56" y="{}">{}</text>"#,
                        y + 28 + LESSON_LINE * i as u32,
                        escape(line)
                    );
                }
                body.push_str("</g>");
                y += height + 12;
            }
        }
    }
    let height = y + 16;
    // Fit never shrinks the diagram below 70 % (its labels readable from the back of a room):
    // it scrolls instead.
    let floor = width * 7 / 10;
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="diagram" viewBox="0 0 {width} {height}" width="{width}" height="{height}" style="--fit-floor:{floor}px" role="img" aria-label="Sequence diagram of the run"><style>{SVG_CSS}</style><defs><marker id="head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="5" markerHeight="5" orient="auto-start-reverse"><path class="head" d="M0,0 L10,5 L0,10 z"/></marker></defs>"#
    );
    for &party in &columns.0 {
        let x = columns.x(party);
        let _ = write!(
            out,
            r#"<line class="lifeline" x1="{x}" x2="{x}" y1="{HEADER}" y2="{height}"/>"#
        );
    }
    out.push_str(&actors(&columns));
    out.push_str(&body);
    out.push_str("</svg>");
    out
}

/// The lifelines' name boxes alone, as wide as the diagram: the page keeps them in view above
/// it, so that at the 401 the room still knows which column is which.
pub fn lifelines(run: &Run) -> String {
    let columns = Columns::of(run);
    let width = columns.width();
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="diagram lifelines" viewBox="0 0 {width} {HEADER}" width="{width}" height="{HEADER}" aria-hidden="true"><style>{SVG_CSS}</style>{}</svg>"#,
        actors(&columns)
    )
}

/// The name box of each lifeline.
fn actors(columns: &Columns) -> String {
    let mut out = String::new();
    for &party in &columns.0 {
        let x = columns.x(party);
        let name = party.name();
        // A long name is squeezed into the box rather than spilling over the next lifeline.
        let squeeze = if name.chars().count() as u32 * 15 > ACTOR_BOX - 20 {
            format!(
                r#" textLength="{}" lengthAdjust="spacingAndGlyphs""#,
                ACTOR_BOX - 20
            )
        } else {
            String::new()
        };
        let _ = write!(
            out,
            r#"<g class="actor"><rect x="{}" y="8" width="{ACTOR_BOX}" height="48" rx="8"/><text x="{x}" y="41" text-anchor="middle"{squeeze}>{name}</text></g>"#,
            x - ACTOR_BOX / 2,
        );
    }
    out
}

/// One exchange: the request arrow and, below it, the answer coming back.
fn exchange_svg(exchange: &Exchange, columns: &Columns, n: usize, y: u32) -> String {
    let (from, to) = (columns.x(exchange.from), columns.x(exchange.to));
    let width = columns.width();
    let request = request_label(exchange);
    let answer = answer_label(exchange);
    // Centred on the arrow, but never off the page: a long label slides inwards.
    let longest = request.chars().count().max(answer.chars().count()) as u32 * LABEL_CHAR;
    let middle = ((from + to) / 2).clamp(longest / 2 + 4, (width - 4).saturating_sub(longest / 2));
    let status = exchange
        .status
        .map_or_else(|| "none".to_owned(), |s| s.to_string());
    format!(
        concat!(
            r#"<g class="exchange" data-exchange="{n}" data-status="{status}" data-from="{from_name}" data-to="{to_name}" tabindex="0">"#,
            r#"<title>{url}</title><rect class="hit" x="0" y="{y}" width="{width}" height="{row}"/>"#,
            r#"<text class="label" x="{middle}" y="{req_text}" text-anchor="middle">{request}</text>"#,
            r#"<line class="request" x1="{from}" x2="{to}" y1="{req_line}" y2="{req_line}" marker-end="url(#head)"/>"#,
            r#"<text class="label answer {class}" x="{middle}" y="{res_text}" text-anchor="middle">{answer}</text>"#,
            r#"<line class="response {class}" x1="{to}" x2="{from}" y1="{res_line}" y2="{res_line}" marker-end="url(#head)"/>{hop}</g>"#
        ),
        hop = hop_svg(exchange, columns, y),
        n = n,
        status = status,
        from_name = exchange.from.name(),
        to_name = exchange.to.name(),
        url = escape(&exchange.url),
        y = y,
        width = width,
        row = EXCHANGE_ROW,
        middle = middle,
        req_text = y + 20,
        request = escape(&request),
        from = from,
        to = to,
        req_line = y + 28,
        class = status_class(exchange),
        res_text = y + 52,
        answer = escape(&answer),
        res_line = y + 60,
    )
}

/// Where the request passed the reverse proxy: a ring on both arrows at the proxy's lifeline,
/// marked as where the client's TLS ends.
fn hop_svg(exchange: &Exchange, columns: &Columns, y: u32) -> String {
    let Some(via) = exchange.via.filter(|via| columns.0.contains(via)) else {
        return String::new();
    };
    let x = columns.x(via);
    format!(
        r#"<circle class="hop" cx="{x}" cy="{req}" r="8"><title>{VIA_HINT}</title></circle><circle class="hop" cx="{x}" cy="{res}" r="8"/><text class="hop-label" x="{label_x}" y="{label_y}">TLS ends</text>"#,
        req = y + 28,
        res = y + 60,
        label_x = x + 12,
        label_y = y + 47,
    )
}

/// What passing the proxy means, where a view has room for a sentence.
const VIA_HINT: &str = "the client's TLS ends at the reverse proxy, which checks the client certificate and forwards it in a header (RFC 9440)";

/// The details panel of every exchange (hidden until its arrow is selected).
pub fn details(run: &Run) -> String {
    let mut out = String::new();
    for (n, exchange) in run.exchanges().enumerate() {
        out.push_str(&detail(exchange, n));
    }
    out
}

fn detail(exchange: &Exchange, n: usize) -> String {
    let mut out = format!(
        r#"<section class="detail" id="detail-{n}" hidden><h2>{} → {}</h2><p class="purpose">{}</p><dl>"#,
        exchange.from.name(),
        exchange.to.name(),
        escape(&exchange.purpose)
    );
    let mut row = |name: &str, value: &str, class: &str| {
        let _ = write!(
            out,
            r#"<dt>{name}</dt><dd class="{class}">{}</dd>"#,
            // A URL may break after a slash, never inside a word.
            escape(value).replace('/', "/<wbr>")
        );
    };
    row(
        "Request",
        &format!("{} {}", exchange.method, exchange.url),
        "mono",
    );
    if let Some(via) = exchange.via {
        row("Via", &format!("{}: {VIA_HINT}", via.name()), "");
    }
    row(
        "Status",
        &answer_label(exchange),
        &format!("status {}", status_class(exchange)),
    );
    if let Some(error) = &exchange.error {
        row("Error", error, "");
    }
    if let Some(challenge) = &exchange.www_authenticate {
        row("WWW-Authenticate", challenge, "mono");
    }
    if let Some(content_type) = &exchange.content_type {
        row("Content-Type", content_type, "mono");
    }
    out.push_str("</dl>");
    if let Some(sent) = &exchange.sent {
        out.push_str(&sent_view(sent));
    }
    out.push_str(&binding(exchange));
    out.push_str(&dpop_binding(exchange));
    match &exchange.token {
        Some(token) => {
            let _ = write!(
                out,
                r#"<h3>Access token, decoded</h3><p class="hint">Header and claims only: the token itself and its signature are never shown.</p><h4>Header</h4><pre>{}</pre><h4>Claims</h4><pre>{}</pre>"#,
                escape(&pretty(&token.header)),
                escape(&pretty(&token.claims))
            );
        }
        None if exchange.purpose.contains("admin") || exchange.purpose.contains("Admin") => {
            out.push_str(r#"<p class="hint">The admin token and password are never shown.</p>"#);
        }
        None => {}
    }
    out.push_str("</section>");
    out
}

/// How the request authenticated its client, as it went: headers and form with every secret
/// masked, and a client assertion decoded.
fn sent_view(sent: &SentView) -> String {
    let mut out = String::from(
        r#"<h3>Client authentication, as sent</h3><p class="hint">Secrets are masked as ***; an assertion shows its header and claims, never its signature.</p><dl>"#,
    );
    for (name, value) in sent.headers.iter().chain(&sent.form) {
        let _ = write!(
            out,
            r#"<dt>{}</dt><dd class="mono">{}</dd>"#,
            escape(name),
            escape(value)
        );
    }
    out.push_str("</dl>");
    if let Some(assertion) = &sent.assertion {
        let _ = write!(
            out,
            r#"<h4>client_assertion header</h4><pre>{}</pre><h4>client_assertion claims</h4><pre>{}</pre>"#,
            escape(&pretty(&assertion.header)),
            escape(&pretty(&assertion.claims))
        );
    }
    out
}

/// The TLS client certificate next to the token's `cnf.x5t#S256`, with the verdict.
fn binding(exchange: &Exchange) -> String {
    let certificate = match &exchange.client_certificate {
        Some(cert) => format!(
            r#"<dt>Subject</dt><dd class="mono">{}</dd><dt>SHA-256 thumbprint</dt><dd class="mono thumbprint">{}</dd>"#,
            escape(&cert.subject),
            escape(&cert.thumbprint)
        ),
        None => r#"<dt>Certificate</dt><dd>none presented</dd>"#.into(),
    };
    let bound = exchange.token.as_ref().and_then(|t| t.x5t_s256());
    if exchange.client_certificate.is_none() && bound.is_none() {
        return String::new();
    }
    let mut out = format!(
        r#"<h3>TLS client certificate</h3><dl>{certificate}<dt>Token cnf.x5t#S256</dt><dd class="mono thumbprint">{}</dd></dl>"#,
        escape(bound.unwrap_or("(no token, or not bound)"))
    );
    out.push_str(match exchange.binding_holds() {
        Some(true) => {
            r#"<p class="binding equal">✓ Equal: the token is bound to the certificate that presented it (RFC 8705).</p>"#
        }
        Some(false) if exchange.client_certificate.is_none() => {
            r#"<p class="binding differ">✗ Not equal: no certificate was presented, so the bound token must be refused.</p>"#
        }
        Some(false) => {
            r#"<p class="binding differ">✗ Not equal: this certificate is not the one the token is bound to.</p>"#
        }
        None => "",
    });
    out
}

/// The DPoP proof, decoded, and its key's thumbprint next to the token's `cnf.jkt`, with the
/// verdict: the DPoP counterpart of [`binding`].
fn dpop_binding(exchange: &Exchange) -> String {
    let bound = exchange.token.as_ref().and_then(|t| t.jkt());
    let Some(proof) = &exchange.proof else {
        return match (bound, exchange.to) {
            (Some(bound), to) if to != Party::Keycloak && to != Party::Platform => format!(
                r#"<h3>DPoP proof</h3><dl><dt>Proof</dt><dd>none sent</dd><dt>Token cnf.jkt</dt><dd class="mono thumbprint">{}</dd></dl><p class="binding differ">{}</p>"#,
                escape(bound),
                match exchange.status {
                    Some(200) =>
                        "✗ No proof, yet served: this resource server does not check bindings, so the DPoP-bound token worked as a bearer token.",
                    _ =>
                        "✗ No proof: a DPoP-bound token without one is refused (RFC 9449 section 7.2).",
                }
            ),
            _ => String::new(),
        };
    };
    let mut out = format!(
        r#"<h3>DPoP proof, decoded</h3><p class="hint">Header (with the public key) and claims; the signature is never shown.</p><h4>Header</h4><pre>{}</pre><h4>Claims</h4><pre>{}</pre><dl><dt>Proof key thumbprint (RFC 7638)</dt><dd class="mono thumbprint">{}</dd>"#,
        escape(&pretty(&proof.header)),
        escape(&pretty(&proof.claims)),
        escape(&proof.thumbprint)
    );
    if let Some(bound) = bound {
        let _ = write!(
            out,
            r#"<dt>Token cnf.jkt</dt><dd class="mono thumbprint">{}</dd>"#,
            escape(bound)
        );
    }
    out.push_str("</dl>");
    out.push_str(match exchange.dpop_binding_holds() {
        Some(true) => {
            r#"<p class="binding equal">✓ Equal: the proof is signed by the key the token is bound to (RFC 9449).</p>"#
        }
        Some(false) => {
            r#"<p class="binding differ">✗ Not equal: the proof is signed by another key than the one the token is bound to.</p>"#
        }
        None => "",
    });
    out
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// Who a page is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageFor {
    /// The presenter: live, with Next, and the audience page's address when there is one.
    Presenter { audience: Option<String> },
    /// The room: live, following the run, without Next.
    Audience,
    /// The hand-out: the finished run, offline.
    HandOut,
}

/// The page of a run for `page_for`: live (connected to the run) for the presenter and the
/// room, or the standalone hand-out of a finished run. Either way it shows the run as it is
/// now, so it is useful before any script runs.
pub fn page(run: &Run, page_for: &PageFor) -> String {
    let live = *page_for != PageFor::HandOut;
    let view = View::of(run);
    let downloads = if live {
        r#"<nav id="downloads" hidden>Download: <a href="export/run.html" download>HTML</a> <a href="export/run.svg" download>SVG</a> <a href="export/run.mmd" download>mermaid</a></nav>"#
    } else {
        ""
    };
    let next = match page_for {
        PageFor::Presenter { audience } => {
            let mut buttons = r#"<button id="next" type="button" disabled title="Space, → or PageDown">Next ▶</button>"#.to_owned();
            if let Some(url) = audience {
                let _ = write!(
                    buttons,
                    r#"<details id="audience"><summary>Audience: {}</summary>{}</details>"#,
                    escape(url),
                    crate::audience::qr_svg(url)
                );
            }
            buttons
        }
        PageFor::Audience | PageFor::HandOut => String::new(),
    };
    // A hand-out says when it was made: a printed page outlives the run.
    let context = if live {
        String::new()
    } else {
        let ran_against: String = (run.context.iter())
            .map(|(what, which)| format!(" · {} {}", escape(what), escape(which)))
            .collect();
        format!(
            r#"<p id="context">Exported {} UTC by oauth2-playbook {}{ran_against}</p>"#,
            exported_at(),
            env!("CARGO_PKG_VERSION")
        )
    };
    format!(
        r#"<!doctype html>
<html lang="en" data-theme="light"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}: the run</title><style>{PAGE_CSS}</style></head>
<body data-live="{live}" data-audience="{audience}" data-waiting="{waiting}" data-step="{step}" data-finished="{finished}">
<header><h1>{title}</h1><p id="status" role="status">{status}</p>{context}<div id="vote" hidden></div><p id="tally" hidden></p>{next}<button id="theme" type="button" title="T">Theme</button><button id="fit" type="button" title="F">Fit</button>{downloads}</header>
<main><div id="diagram"><div id="lifelines">{lifelines}</div><div id="arrows">{svg}</div></div><aside id="details"><p id="hint" class="hint">Select an arrow to see its request, answer, token and certificate.</p><div id="exchanges">{details}</div></aside></main>
<script>{PAGE_JS}</script>
</body></html>
"#,
        waiting = view.waiting_for.is_some(),
        step = escape(view.waiting_for.as_deref().unwrap_or_default()),
        finished = view.finished.map_or(String::new(), |ok| ok.to_string()),
        status = escape(&view.status),
        svg = view.svg,
        lifelines = view.lifelines,
        details = view.details,
        title = escape(run.title()),
        context = context,
        audience = *page_for == PageFor::Audience,
    )
}

/// Now, as `YYYY-MM-DD HH:MM`.
fn exported_at() -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_default()
}

/// The run as mermaid text, for slides and docs.
pub fn mermaid(run: &Run) -> String {
    let parties = run.parties();
    let mut out = String::from("sequenceDiagram\n");
    for party in &parties {
        let _ = writeln!(out, "    participant {} as {}", party.id(), party.name());
    }
    let span = format!(
        "{},{}",
        parties.first().map_or("C", |p| p.id()),
        parties.last().map_or("R", |p| p.id())
    );
    let id = |party: Party| party.id();
    for event in &run.events {
        match event {
            Event::Step { title } => {
                let _ = writeln!(out, "    Note over {span}: {}", mermaid_text(title));
            }
            Event::Exchange(exchange) => {
                let (from, to) = (id(exchange.from), id(exchange.to));
                // Through the proxy, each arrow is drawn as its two hops.
                let hops: Vec<(&str, &str)> = match exchange.via {
                    Some(via) => vec![(from, id(via)), (id(via), to)],
                    None => vec![(from, to)],
                };
                let request = mermaid_text(&request_label(exchange));
                for (a, b) in &hops {
                    let _ = writeln!(out, "    {a}->>{b}: {request}");
                }
                let answer = mermaid_text(&answer_label(exchange));
                for (a, b) in hops.iter().rev() {
                    let _ = writeln!(out, "    {b}-->>{a}: {answer}");
                }
            }
            Event::Lesson { text } => {
                let _ = writeln!(out, "    Note over {span}: {}", mermaid_text(text));
            }
            Event::Verdict { held, text } => {
                let mark = Event::verdict_mark(*held);
                let _ = writeln!(out, "    Note over {span}: {mark} {}", mermaid_text(text));
            }
            Event::Question { prompt, choices } => {
                let line = Event::question_line(prompt, choices);
                let _ = writeln!(out, "    Note over {span}: {}", mermaid_text(&line));
            }
        }
    }
    out
}

/// Mermaid reads `#` and `;` as syntax: they go in as entity codes.
fn mermaid_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '#' => "#35;".to_owned(),
            ';' => "#59;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use base64::Engine;
    use playbook_trace::{CertView, TokenView, Trace};

    use super::*;

    pub const PASSWORD: &str = "s3cret-admin-password";

    fn jwt(claims: serde_json::Value) -> String {
        let b64 = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.c2lnbmF0dXJl",
            b64(&serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "k1"})),
            b64(&claims)
        )
    }

    /// The demo's shape: admin token, a token, 403, the role, a token, 200, replay 401.
    pub fn demo_run() -> Run {
        let trace = Trace::new();
        let cert = CertView {
            subject: "CN=oauth2-playbook-client".into(),
            thumbprint: "T1".into(),
        };
        let token = |scope: &str| {
            TokenView::decode(&jwt(serde_json::json!({
                "sub": "service-account", "scope": scope, "cnf": {"x5t#S256": "T1"}
            })))
        };
        let call = |status: u16, answer: &str, cert: Option<CertView>, scope: &str| {
            let mut e = Exchange::new(
                Party::Client,
                Party::ResourceServer,
                "GET",
                "https://localhost:8443/api/users",
            );
            e.answered(status, answer);
            e.token = token(scope);
            e.client_certificate = cert;
            if status != 200 {
                e.www_authenticate = Some(format!(r#"Bearer error="{answer}""#));
            }
            e
        };
        let token_request = |scope: &str| {
            let mut e = Exchange::new(
                Party::Client,
                Party::Keycloak,
                "POST",
                "https://localhost:9443/realms/oauth2-playbook/protocol/openid-connect/token",
            );
            e.answered(200, "access token, 300 s");
            e.token = token(scope);
            e.client_certificate = Some(cert.clone());
            e
        };
        trace.step("Lesson 1: before the role");
        trace.record(token_request("profile"));
        trace.record(call(
            403,
            "insufficient_scope",
            Some(cert.clone()),
            "profile",
        ));
        trace.lesson("403 insufficient_scope: authenticated, but not allowed.");
        trace.step("1. Admin token");
        let mut admin = Exchange::new(
            Party::Client,
            Party::Keycloak,
            "POST",
            "https://localhost:9443/realms/master/protocol/openid-connect/token",
        );
        admin.purpose = "password grant as admin, client admin-cli".into();
        admin.answered(200, "admin token (not shown)");
        trace.record(admin);
        trace.step("2. Assign the role");
        let mut assign = Exchange::new(
            Party::Client,
            Party::Keycloak,
            "POST",
            "https://localhost:9443/admin/realms/oauth2-playbook/users/0c7b3a4e-1b2c-4d5e-8f90-123456789abc/role-mappings/realm",
        );
        assign.purpose = "Admin API, admin token".into();
        assign.answered(204, "");
        trace.record(assign);
        trace.record(token_request("profile users:read"));
        trace.record(call(
            200,
            "3 user(s)",
            Some(cert.clone()),
            "profile users:read",
        ));
        trace.step("Lesson 2: replay without the certificate");
        trace.record(call(401, "invalid_token", None, "profile users:read"));
        trace.lesson("401 invalid_token; the token is bound to the certificate (cnf.x5t#S256).");
        trace.finish(true);
        trace.snapshot()
    }

    /// `(data-status, data-from, data-to)` of each exchange group, in document order.
    pub fn arrows(svg: &str) -> Vec<(String, String, String)> {
        let attr = |group: &str, name: &str| {
            group
                .split(&format!(r#"{name}=""#))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_default()
                .to_owned()
        };
        svg.split(r#"<g class="exchange""#)
            .skip(1)
            .map(|group| {
                (
                    attr(group, "data-status"),
                    attr(group, "data-from"),
                    attr(group, "data-to"),
                )
            })
            .collect()
    }

    #[test]
    fn the_svg_has_one_arrow_pair_per_exchange_in_order_with_its_status() {
        let run = demo_run();
        let svg = svg(&run);
        let statuses: Vec<String> = arrows(&svg).into_iter().map(|(s, _, _)| s).collect();
        assert_eq!(statuses, ["200", "403", "200", "204", "200", "200", "401"]);
        assert_eq!(svg.matches(r#"class="request""#).count(), 7);
        assert_eq!(svg.matches(r#"class="response "#).count(), 7);
        assert!(svg.contains(">403 insufficient_scope<"));
        assert!(svg.contains(">401 invalid_token<"));
        assert!(
            svg.contains("POST /admin/realms/…/users/{id}/role-mappings/realm"),
            "ids and the realm shortened on the arrow"
        );
        assert_eq!(svg.matches(r#"<g class="lesson">"#).count(), 2);
        assert!(svg.starts_with("<svg xmlns=") && svg.ends_with("</svg>"));
    }

    #[test]
    fn behind_the_proxy_every_view_draws_the_hop_where_tls_ends() {
        let trace = Trace::new();
        trace.through_proxy("https://localhost:9443/");
        let mut token = Exchange::new(
            Party::Client,
            Party::Keycloak,
            "POST",
            "https://localhost:9443/realms/r/protocol/openid-connect/token",
        );
        token.answered(200, "access token, 300 s");
        trace.record(token);
        // Another origin (the API's own port, past its proxy) is drawn straight.
        let mut around = Exchange::new(
            Party::Intruder,
            Party::ResourceServer,
            "GET",
            "https://localhost:9443x/api/users",
        );
        around.answered(401, "invalid_token");
        trace.record(around);
        let run = trace.snapshot();
        assert_eq!(
            run.parties(),
            [
                Party::Client,
                Party::Intruder,
                Party::Proxy,
                Party::Keycloak,
                Party::ResourceServer
            ]
        );
        let svg = svg(&run);
        assert_eq!(
            svg.matches(r#"<circle class="hop""#).count(),
            2,
            "two rings, one exchange"
        );
        assert_eq!(svg.matches(">TLS ends<").count(), 1);
        assert!(svg.contains(">Proxy<"));
        let mermaid = mermaid(&run);
        let arrows: Vec<&str> = mermaid
            .lines()
            .map(str::trim)
            .filter(|l| l.contains(">>"))
            .map(|l| l.split(':').next().unwrap_or_default())
            .collect();
        assert_eq!(
            arrows,
            ["C->>X", "X->>K", "K-->>X", "X-->>C", "I->>R", "R-->>I"]
        );
        assert!(details(&run).contains("<dt>Via</dt>"));
    }

    #[test]
    fn the_details_show_each_dpop_proof_and_its_key_beside_the_tokens_cnf_jkt() {
        let trace = Trace::new();
        let token = TokenView::decode(&jwt(serde_json::json!({"cnf": {"jkt": "K1"}}))).unwrap();
        let proof = |thumbprint: &str| {
            playbook_trace::ProofView::new(
                &jwt(serde_json::json!({"htm": "GET", "htu": "https://localhost:8443/api/users"})),
                thumbprint,
            )
        };
        for (thumbprint, status) in [
            (Some("K1"), 200),
            (Some("K2"), 401),
            (None, 401),
            (None, 200),
        ] {
            let mut call = Exchange::new(
                Party::Client,
                Party::ResourceServer,
                "GET",
                "https://localhost:8443/api/users",
            );
            call.token = Some(token.clone());
            call.proof = thumbprint.and_then(proof);
            call.answered(status, "");
            trace.record(call);
        }
        let details = details(&trace.snapshot());
        assert!(details.contains("DPoP proof, decoded"));
        assert!(details.contains("htu") && details.contains("https://localhost:8443/api/users"));
        assert_eq!(
            details
                .matches("✓ Equal: the proof is signed by the key")
                .count(),
            1
        );
        assert_eq!(
            details
                .matches("✗ Not equal: the proof is signed by another key")
                .count(),
            1
        );
        assert_eq!(
            details
                .matches("✗ No proof: a DPoP-bound token without one is refused")
                .count(),
            1
        );
        assert_eq!(details.matches("✗ No proof, yet served").count(), 1);
        assert!(
            !details.contains("c2lnbmF0dXJl"),
            "never a proof's signature"
        );
    }

    #[test]
    fn the_details_show_how_the_client_authenticated_with_its_secret_masked() {
        let trace = Trace::new();
        let mut exchange = Exchange::new(
            Party::Client,
            Party::Keycloak,
            "POST",
            "https://localhost:9443/realms/r/protocol/openid-connect/token",
        );
        let assertion = jwt(serde_json::json!({"iss": "c", "aud": "https://issuer"}));
        exchange.sent = Some(
            SentView::form(&[
                ("grant_type", "client_credentials"),
                ("client_secret", "s3cret-client"),
                ("client_assertion", assertion.as_str()),
            ])
            .with_basic_auth(),
        );
        exchange.answered(200, "access token, 300 s");
        trace.record(exchange);
        let run = trace.snapshot();
        let details = details(&run);
        assert!(details.contains("Client authentication, as sent"));
        assert!(details.contains("Basic ***") && details.contains("client_credentials"));
        assert!(details.contains("&quot;aud&quot;: &quot;https://issuer&quot;"));
        for text in [
            details,
            page(&run, &PageFor::HandOut),
            svg(&run),
            mermaid(&run),
        ] {
            assert!(!text.contains("s3cret-client") && !text.contains("c2lnbmF0dXJl"));
        }
    }

    #[test]
    fn a_lab_hand_out_has_its_title_its_verdicts_a_date_and_prints() {
        let trace = Trace::new();
        trace.title(
            "The attack lab: stolen-token: A stolen token presented with another certificate",
        );
        trace.step("Lab stolen-token: A stolen token presented with another certificate");
        let mut replay = Exchange::new(
            Party::Intruder,
            Party::ResourceServer,
            "GET",
            "https://localhost:8443/api/users",
        );
        replay.answered(401, "invalid_token");
        trace.record(replay);
        trace.verdict(true, "refused, as it must be: the replay → 401");
        trace.verdict(false, "NOT as expected (expected 401): the other → 200");
        trace.lesson("Binding holds. (RFC 8705 §3)");
        trace.question("What will it answer?", &["200 OK", "401 invalid_token"]);
        trace.context("Keycloak", "26.7.3 (native)");
        trace.finish(false);
        let run = trace.snapshot();
        let svg = svg(&run);
        assert_eq!(svg.matches(r#"<g class="verdict held">"#).count(), 1);
        assert_eq!(svg.matches(r#"<g class="verdict broken">"#).count(), 1);
        assert!(svg.contains("✓ refused, as it must be") && svg.contains("✗ NOT as expected"));
        assert!(mermaid(&run).contains("Note over C,R: ✓ refused, as it must be"));
        assert!(svg.contains(r#"<g class="question">"#));
        assert!(svg.contains("? What will it answer?  a) 200 OK   b) 401 invalid_token"));
        let hand_out = page(&run, &PageFor::HandOut);
        assert!(hand_out.contains("<title>The attack lab: stolen-token: A stolen token"));
        assert!(hand_out.contains(r#"<p id="context">Exported 20"#));
        assert!(hand_out.contains(" · Keycloak 26.7.3 (native)</p>"));
        assert!(hand_out.contains("@media print"));
        assert!(
            !page(&run, &PageFor::Presenter { audience: None }).contains(r#"id="context""#),
            "the live page is now"
        );
    }

    #[test]
    fn no_view_carries_a_token_or_a_password() {
        let run = demo_run();
        for text in [
            svg(&run),
            details(&run),
            page(&run, &PageFor::Presenter { audience: None }),
            mermaid(&run),
        ] {
            assert!(!text.contains("eyJ"), "a compact JWT reached a view");
            assert!(!text.contains("c2lnbmF0dXJl"), "a signature reached a view");
            assert!(!text.contains(PASSWORD));
        }
    }

    #[test]
    fn details_show_the_certificate_next_to_cnf_and_say_whether_they_match() {
        let run = demo_run();
        let html = details(&run);
        let sections: Vec<&str> = html.split(r#"<section class="detail""#).skip(1).collect();
        assert_eq!(sections.len(), 7);
        assert!(
            sections[4].contains("binding equal"),
            "200 with the bound certificate"
        );
        assert!(sections[4].contains("CN=oauth2-playbook-client"));
        assert!(sections[6].contains("binding differ") && sections[6].contains("none presented"));
        assert!(sections[6].contains(r#"Bearer error=&quot;invalid_token&quot;"#));
        assert!(sections[2].contains("admin token and password are never shown"));
        assert!(
            sections[1].contains("&quot;scope&quot;: &quot;profile&quot;"),
            "claims decoded"
        );
    }

    #[test]
    fn mermaid_is_the_actual_run() {
        let text = mermaid(&demo_run());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "sequenceDiagram");
        assert!(lines.contains(&"    R-->>C: 403 insufficient_scope"));
        assert!(lines.contains(&"    R-->>C: 401 invalid_token"));
        assert!(text.contains("cnf.x5t#35;S256"), "# is escaped for mermaid");
        let requests = lines
            .iter()
            .filter(|l| l.contains("->>") && !l.contains("-->>"));
        assert_eq!(requests.count(), 7);
    }

    #[test]
    fn every_party_of_a_run_gets_its_own_lifeline_and_housekeeping_says_why() {
        let trace = Trace::new();
        let mut keys = Exchange::new(
            Party::UnboundResourceServer,
            Party::Keycloak,
            "GET",
            "https://localhost:9443/realms/r/protocol/openid-connect/certs",
        );
        keys.reason = "at start".into();
        keys.answered(200, "2 key(s)");
        trace.record(keys);
        for to in [Party::ResourceServer, Party::UnboundResourceServer] {
            let mut replay =
                Exchange::new(Party::Intruder, to, "GET", "https://localhost:1/api/users");
            replay.answered(200, "1 user(s)");
            trace.record(replay);
        }
        let run = trace.snapshot();
        assert_eq!(
            run.parties(),
            [
                Party::Client,
                Party::Intruder,
                Party::Keycloak,
                Party::ResourceServer,
                Party::UnboundResourceServer
            ]
        );
        let text = mermaid(&run);
        assert!(text.contains("    participant I as Intruder\n"), "{text}");
        assert!(text.contains("    participant RB as ResourceServer (binding off)\n"));
        assert!(text.contains("    I->>RB: GET /api/users\n"), "{text}");
        assert!(
            text.contains("    RB->>K: GET /realms/r/…/certs (at start)\n"),
            "{text}"
        );
        let svg = svg(&run);
        for party in run.parties() {
            assert!(
                svg.contains(&format!(">{}</text>", party.name())),
                "{party:?}"
            );
        }
        assert!(svg.contains(r#"viewBox="0 0 1650 "#), "five columns wide");
    }

    #[test]
    fn the_hand_out_is_one_offline_file() {
        let html = page(&demo_run(), &PageFor::HandOut);
        assert!(html.contains("<svg") && html.contains(r#"id="detail-6""#));
        assert!(
            !html.contains("src=\"http") && !html.contains("href=\"http"),
            "nothing fetched"
        );
        assert!(!html.contains(r#"id="next""#), "no Next without a run");
        assert!(html.contains("Finished: 7 exchanges"));
    }

    #[test]
    fn wrapping_never_splits_a_word() {
        let lines = wrap("a bb ccc dddd eeeee-very-long-word f", 8);
        assert_eq!(lines, ["a bb ccc", "dddd", "eeeee-very-long-word", "f"]);
    }
}
