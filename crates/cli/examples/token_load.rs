//! The load of `scripts/uncached-load.sh`: what the resource server pays for a token it has not
//! seen, next to one it has and to no authentication at all, measured in one run with tokens
//! Keycloak really issued.
//!
//! 1. A realm of its own on a real Keycloak (the test kit starts one, as `cargo test` does): the
//!    read-only role granted, the client's token lifespan raised through the Admin API so the
//!    pool outlives the run, then a pool of tokens got with client credentials over mTLS: three
//!    times the larger of the resource server's caches (introspection answers: 10,000). The
//!    first third is sent once, before any measurement, to fill the caches (quick_cache keeps
//!    what filled it, in its hot part); the distinct-token windows then go round the other two
//!    thirds, and the server's own hit counts (`/bench/cache`) prove they were all misses: a
//!    window with more than 1 % hits in either cache is refused, since its figures would not
//!    be a new token's.
//! 2. The load target (the resource server's `examples/load_target.rs`, `--issuer` mode) pinned
//!    to CPU 0 and this generator's load thread pinned to CPU 1, so the server's own cost per
//!    request decides its throughput. The load thread polls instead of sleeping (see
//!    `Load::busy`), except on the paths that wait on Keycloak.
//! 3. Per round, in alternating order: no authentication, the same token on every request, a
//!    different token on every request, and both again on a second target in introspection
//!    mode; each a warm-up, then a measured window. The server's CPU per request is its
//!    utime+stime over the window (from /proc) divided by the requests answered in it, so time
//!    other processes or the hypervisor take does not count.
//! 4. One raw RS256 verification of the pool's tokens with the realm's key parsed once
//!    (aws-lc-rs), on CPU 0 like the server: the yardstick of the uncached path.
//! 5. The same and the distinct tokens again at one offered rate both sustain easily, to compare
//!    their tails (at saturation, a closed loop's latency is its connections × a request's cost).
//! 6. Beside them, a DPoP-bound token of the private_key_jwt client with a fresh proof on every
//!    request, signed here: what the resource server pays for a proof it must check each time.
//!
//! oha, which `scripts/load-test.sh` uses, sends the same headers on every request, so it can
//! only measure the cache's hit path; hence this generator, on hyper's HTTP/1.1 client
//! connections over rustls, trusting only the local CA and presenting the client certificate.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, HOST, HeaderValue};
use hyper_util::rt::TokioIo;
use playbook_keycloak::CLIENT_ID;
use playbook_resource_server::{INTROSPECTION_CACHE_CAPACITY, VERIFIED_CACHE_CAPACITY};
use playbook_testkit::{TestRealm, certs};
use tokio::io::{AsyncBufReadExt, BufReader};
use url::Url;

#[derive(Parser)]
struct Args {
    /// The built load target (`target/release/examples/load_target`).
    #[arg(long)]
    target: PathBuf,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Measured seconds per path and round.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Unmeasured seconds before each window (connections open, caches and JIT-free code warm).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Tokens in the pool [default: three times the larger of the target's caches].
    #[arg(long)]
    pool: Option<usize>,
    /// The target's verified-token cache capacity (`--verified-cache-capacity`) [default: the
    /// target's own; without this flag, a target built before the flag existed works too].
    #[arg(long)]
    capacity: Option<usize>,
    /// The offered rate of the equal-load phase [default: a quarter of what distinct tokens
    /// reach at saturation, so that neither path queues much].
    #[arg(long)]
    rate: Option<f64>,
    /// Record the server with `perf record -g` into DIR/<path>.perf, one window per path in a
    /// round of its own before the measured ones, so the profiler's cost is in no figure
    /// (`perf report -i DIR/distinct.perf --no-children` shows where a new token's time goes).
    #[arg(long, value_name = "DIR")]
    perf: Option<PathBuf>,
    /// Only these paths at saturation [default: all]; the equal-load phase needs `distinct`
    /// (or `--rate`).
    #[arg(long, value_delimiter = ',', value_enum)]
    paths: Vec<Path>,
    /// Let the load's thread sleep between answers, as an ordinary client does, instead of
    /// polling. Over loopback the server's CPU then also pays for waking it (see `Load::busy`).
    #[arg(long)]
    idle_generator: bool,
}

/// Long enough for minting and every round; the realm is the run's own.
const LIFESPAN: Duration = Duration::from_secs(3 * 3600);
/// Token requests in flight while minting: Keycloak shares the machine's two cores.
const MINT_CONCURRENCY: usize = 8;
const LIST_USERS: &str = "/api/users";
const NO_AUTH: &str = "/bench/users-noauth";

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum Path {
    #[value(name = "noauth")]
    NoAuth,
    #[value(name = "same")]
    SameToken,
    #[value(name = "distinct")]
    DistinctTokens,
    /// The same, on a second target in introspection mode (answers cached 10 s).
    #[value(name = "introspection-same")]
    IntrospectedSame,
    /// Every request asks Keycloak: a new token is never in the answers' cache.
    #[value(name = "introspection-distinct")]
    IntrospectedDistinct,
    /// One DPoP-bound token, with a fresh proof on every request (made here, on the load's CPU):
    /// a proof is single-use, so every request pays its check.
    #[value(name = "dpop")]
    DpopSameToken,
}

impl Path {
    const ALL: [Path; 6] = [
        Path::NoAuth,
        Path::SameToken,
        Path::DistinctTokens,
        Path::IntrospectedSame,
        Path::IntrospectedDistinct,
        Path::DpopSameToken,
    ];
    /// Whether every request may wait on Keycloak, which shares the load's CPU.
    fn asks_keycloak(self) -> bool {
        matches!(self, Path::IntrospectedSame | Path::IntrospectedDistinct)
    }
    fn name(self) -> String {
        use clap::ValueEnum;
        (self.to_possible_value()).map_or_else(String::new, |v| v.get_name().to_owned())
    }
    fn label(self) -> &'static str {
        match self {
            Path::NoAuth => "no authentication (same handler)",
            Path::SameToken => "same token every request",
            Path::DistinctTokens => "a different token every request",
            Path::IntrospectedSame => "introspection mode, same token",
            Path::IntrospectedDistinct => "introspection mode, a different token every request",
            Path::DpopSameToken => "DPoP: same token, a fresh proof every request",
        }
    }
}

/// One measured window.
#[derive(Clone, Copy)]
struct Window {
    /// Of the requests in the window, the share the verified-token cache answered (`None`:
    /// no lookups, or a target that does not count them).
    verified_hits: Option<f64>,
    /// The same for the introspection answers, on the target in introspection mode.
    introspection_hits: Option<f64>,
    requests: u64,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    cpu_us_per_request: f64,
    rss_mib: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pinned = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    // Enough fillers for the larger of the two caches a target keeps.
    let capacity = (args.capacity)
        .unwrap_or(VERIFIED_CACHE_CAPACITY)
        .max(INTROSPECTION_CACHE_CAPACITY);
    let pool = args.pool.unwrap_or(3 * capacity);
    if pool < 2 * capacity || args.rounds == 0 {
        bail!(
            "--pool must be at least {} (a cache's worth to fill it, as much again to measure) and --rounds at least 1",
            2 * capacity
        );
    }
    let (realm, tokens, jwks) = playbook_testkit::run(mint(pool))?;
    let (dpop_token, dpop_key) = playbook_testkit::run(mint_dpop(&realm))?;
    eprintln!("[load] {} tokens from realm {}", tokens.len(), realm.name);
    let headers: Vec<HeaderValue> = tokens
        .iter()
        .map(|t| HeaderValue::from_str(&format!("Bearer {t}")))
        .collect::<Result<_, _>>()?;
    let raw = RawVerify::new(&tokens, &jwks)?;

    let start =
        |introspection| Target::start(&args.target, &realm, pinned, introspection, args.capacity);
    let server = playbook_testkit::run(start(false))?;
    let introspecting = playbook_testkit::run(start(true))?;
    let load = Load {
        base: server.url.clone(),
        pid: server.pid,
        connections: args.connections,
        warmup: Duration::from_secs_f64(args.warmup),
        window: Duration::from_secs_f64(args.seconds),
        tls: Arc::new(
            playbook_client::mtls_config(&certs().ca_pem, &certs().client)
                .context("the client certificate is not usable")?,
        ),
        perf: None,
        busy: false,
        rate: None,
        dpop: None,
        cursor: Arc::default(),
    };
    let (fillers, measured) = headers.split_at(capacity);
    let (fillers, all) = (Arc::new(fillers.to_vec()), Arc::new(measured.to_vec()));
    let one = Arc::new(vec![all[0].clone()]);
    let none = Arc::new(Vec::new());

    let introspection = Load {
        base: introspecting.url.clone(),
        pid: introspecting.pid,
        cursor: Arc::default(),
        ..load.clone()
    };
    let dpop = Load {
        dpop: Some(dpop_key),
        cursor: Arc::default(),
        ..load.clone()
    };
    let dpop_one = Arc::new(vec![HeaderValue::from_str(&format!(
        "{} {dpop_token}",
        playbook_dpop::SCHEME
    ))?]);
    let load_for = |path| match path {
        Path::NoAuth => (&load, NO_AUTH, none.clone()),
        Path::SameToken => (&load, LIST_USERS, one.clone()),
        Path::DistinctTokens => (&load, LIST_USERS, all.clone()),
        Path::IntrospectedSame => (&introspection, LIST_USERS, one.clone()),
        Path::IntrospectedDistinct => (&introspection, LIST_USERS, all.clone()),
        Path::DpopSameToken => (&dpop, LIST_USERS, dpop_one.clone()),
    };

    // The fillers, once each, to both targets: a cache's worth of tokens never sent again.
    for target in [&load, &introspection] {
        let filling = Load {
            warmup: Duration::ZERO,
            window: Duration::from_secs(1),
            ..target.clone()
        };
        let fillers = fillers.clone();
        on_cpu(pinned.then_some(1), move || {
            filling.fill(LIST_USERS, &fillers)
        })??;
    }

    // Saturation: each path as fast as the server answers it.
    let mut results: Vec<(Path, Window)> = Vec::new();
    let mut raw_us = Vec::new();
    let paths: Vec<Path> = (Path::ALL.into_iter())
        .filter(|p| args.paths.is_empty() || args.paths.contains(p))
        .collect();
    if let Some(dir) = &args.perf {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    println!("{}", Window::HEADER);
    // Round 0 is the profiled one, when there is one: not counted.
    let first = if args.perf.is_some() { 0 } else { 1 };
    for round in first..=args.rounds {
        let mut order = paths.clone();
        if round % 2 == 0 {
            order.reverse();
        }
        for &path in &order {
            let (load, route, headers) = load_for(path);
            let mut load = load.clone();
            if round == 0
                && let Some(dir) = &args.perf
            {
                load.perf = Some(dir.join(format!("{}.perf", path.name())));
            }
            load.busy = !args.idle_generator && !path.asks_keycloak();
            let window = on_cpu(pinned.then_some(1), move || load.run(route, headers))??;
            let label = if round == 0 { "profiled" } else { "" };
            println!("| {round}{label} | {} | {} |", path.label(), window.row());
            let hits = [window.verified_hits, window.introspection_hits];
            if matches!(path, Path::DistinctTokens | Path::IntrospectedDistinct)
                && let Some(hits) = hits.into_iter().flatten().find(|&h| h > 0.01)
            {
                bail!(
                    "{:.1} % of the distinct tokens were answered from a cache: these are not a \
                     new token's figures (a bigger --pool helps)",
                    hits * 100.0
                );
            }
            if round > 0 {
                results.push((path, window));
            }
        }
        if round == 0 {
            continue;
        }
        let raw = raw.clone();
        raw_us.push(on_cpu(pinned.then_some(0), move || {
            raw.cpu_us_per_verify()
        })??);
    }
    summarize(&results, &raw_us, args.connections, !args.idle_generator);

    // Equal offered load: at saturation a closed loop's latency is its connections times the
    // cost of a request, so the tails are compared at one rate both paths sustain easily.
    let distinct = median(
        (results.iter())
            .filter(|(p, _)| *p == Path::DistinctTokens)
            .map(|(_, w)| w.per_second)
            .collect(),
    );
    let Some(rate) = (args.rate)
        .or((!distinct.is_nan()).then(|| (distinct / 4.0).round()))
        .filter(|rate| rate.is_finite() && *rate > 0.0)
    else {
        println!("\nno equal-load phase: it needs the distinct path measured, or --rate");
        return Ok(());
    };
    let paced = Load {
        rate: Some(rate),
        busy: !args.idle_generator,
        ..load.clone()
    };
    println!(
        "\nat an offered {rate:.0} requests/s on every path:\n\n{}",
        Window::HEADER
    );
    let mut tails: Vec<(Path, Window)> = Vec::new();
    for round in 1..=args.rounds {
        let mut order = [Path::SameToken, Path::DistinctTokens];
        if round % 2 == 0 {
            order.reverse();
        }
        for path in order {
            let (_, route, headers) = load_for(path);
            let load = paced.clone();
            let window = on_cpu(pinned.then_some(1), move || load.run(route, headers))??;
            println!("| {round} | {} | {} |", path.label(), window.row());
            tails.push((path, window));
        }
    }
    let tail = |path: Path, field: fn(&Window) -> f64| {
        median(
            (tails.iter())
                .filter(|(p, _)| *p == path)
                .map(|(_, w)| field(w))
                .collect(),
        )
    };
    println!(
        "\nequal load, median p99: distinct {:.2} ms / same {:.2} ms = {:.2} (target ≤ 2)",
        tail(Path::DistinctTokens, |w| w.p99_ms),
        tail(Path::SameToken, |w| w.p99_ms),
        tail(Path::DistinctTokens, |w| w.p99_ms) / tail(Path::SameToken, |w| w.p99_ms)
    );
    println!(
        "equal load, median p99.9: distinct {:.2} ms / same {:.2} ms = {:.2}",
        tail(Path::DistinctTokens, |w| w.p999_ms),
        tail(Path::SameToken, |w| w.p999_ms),
        tail(Path::DistinctTokens, |w| w.p999_ms) / tail(Path::SameToken, |w| w.p999_ms)
    );
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

impl Window {
    const HEADER: &str = "| round | path | server CPU µs/request | requests/s | p50 ms | p99 ms | p99.9 ms | server RSS MiB | cache hits: verified / introspection |\n|---|---|---|---|---|---|---|---|---|";

    fn row(&self) -> String {
        let share = |s: f64| format!("{:.1} %", s * 100.0);
        format!(
            "{:.1} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {} / {}",
            self.cpu_us_per_request,
            self.per_second,
            self.p50_ms,
            self.p99_ms,
            self.p999_ms,
            self.rss_mib,
            self.verified_hits.map_or("–".into(), share),
            self.introspection_hits.map_or("–".into(), share),
        )
    }
}

/// Step 1: a realm, its role granted, a long lifespan, the pool, and the realm's JWKS.
async fn mint(pool: usize) -> anyhow::Result<(TestRealm, Vec<String>, serde_json::Value)> {
    let realm = TestRealm::new().await;
    realm.grant_readonly_role().await;
    realm
        .provisioner()
        .set_access_token_lifespan(CLIENT_ID, LIFESPAN)
        .await?;
    let client = realm.token_client();
    let started = Instant::now();
    let tokens: Vec<String> = futures::stream::iter(0..pool)
        .map(|i| {
            let client = client.clone();
            async move {
                let token = client.request().await?;
                if (i + 1) % 2000 == 0 {
                    eprintln!("[load] {} tokens minted", i + 1);
                }
                anyhow::Ok(token.expose().to_owned())
            }
        })
        .buffer_unordered(MINT_CONCURRENCY)
        .try_collect()
        .await?;
    eprintln!(
        "[load] minted {pool} tokens in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let jwks = playbook_https::https_client(&certs().ca_pem)?
        .get(realm.urls().jwks())
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok((realm, tokens, jwks))
}

/// A DPoP-bound token of the realm's private_key_jwt client (the FAPI 2.0 pairing), long-lived
/// like the pool, and the key its proofs must be signed with.
async fn mint_dpop(realm: &TestRealm) -> anyhow::Result<(String, playbook_dpop::ProofKey)> {
    use playbook_keycloak::{AuthMethod, TokenBinding};
    let method = AuthMethod::PrivateKeyJwt;
    let provisioner = realm.provisioner();
    let credential = playbook_client::enrol(&provisioner, method, TokenBinding::Dpop).await?;
    provisioner
        .set_access_token_lifespan(method.client_id(), LIFESPAN)
        .await?;
    let key = playbook_dpop::ProofKey::generate()?;
    let config = playbook_client::TokenClientConfig::playbook(
        realm.token_endpoint(),
        &certs().ca_pem,
        &certs().client,
    )
    .with_credential(credential, &realm.urls())
    .with_dpop_key(key.clone());
    let token = playbook_client::TokenClient::new(config)?.request().await?;
    Ok((token.expose().to_owned(), key))
}

/// The load target process, killed when dropped.
struct Target {
    _child: tokio::process::Child,
    pid: u32,
    url: Url,
}

impl Target {
    async fn start(
        binary: &std::path::Path,
        realm: &TestRealm,
        pinned: bool,
        introspection: bool,
        capacity: Option<usize>,
    ) -> anyhow::Result<Self> {
        let mut command = tokio::process::Command::new(binary);
        command
            .arg("--certs-dir")
            .arg(certs().files.dir())
            .args(["--port", "0", "--issuer", realm.issuer().as_str()])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        if introspection {
            command.arg("--introspection");
        }
        if let Some(capacity) = capacity {
            command.args(["--verified-cache-capacity", &capacity.to_string()]);
        }
        if pinned {
            // SAFETY: only an affinity syscall between fork and exec.
            unsafe {
                command.pre_exec(|| {
                    if pin(0) {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}; build it first", binary.display()))?;
        let pid = child.id().context("the load target exited at once")?;
        let mut lines = BufReader::new(child.stdout.take().context("its stdout")?).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("the load target did not start within 30 s")??
            .context("the load target exited before it was ready")?;
        let url = ready
            .strip_prefix("load target ready on ")
            .with_context(|| format!("unexpected first line from the load target: {ready}"))?;
        Ok(Self {
            _child: child,
            pid,
            url: Url::parse(url)?,
        })
    }
}

/// Pins the calling thread (or, before exec, the process to be) to one CPU.
fn pin(cpu: usize) -> bool {
    // SAFETY: a zeroed cpu_set_t is the empty set; the call only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// Runs `work` on a thread of its own, pinned to `cpu` when given.
fn on_cpu<T: Send + 'static>(
    cpu: Option<usize>,
    work: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    std::thread::spawn(move || {
        if let Some(cpu) = cpu
            && !pin(cpu)
        {
            anyhow::bail!("cannot pin a thread to CPU {cpu}: the figures would not be one core's");
        }
        Ok(work())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("a measuring thread panicked"))?
}

#[derive(Clone)]
struct Load {
    base: Url,
    pid: u32,
    connections: usize,
    warmup: Duration,
    window: Duration,
    tls: Arc<rustls::ClientConfig>,
    perf: Option<PathBuf>,
    /// Poll for answers instead of sleeping until one arrives. Over loopback, the kernel delivers
    /// a response to the client's socket on the server's CPU, and wakes the client there: an idle
    /// client's wake-up (an inter-processor interrupt, dear on a VM) was billed to the server,
    /// ~7 µs a request at 28 k requests/s and less at higher rates, which made a slower path look
    /// dearer than its own work (docs/benchmarks.md). A client on another machine costs the
    /// server nothing of the kind. Not for paths that wait on Keycloak, which needs this CPU.
    busy: bool,
    /// Requests/s offered over all connections; `None` sends each as soon as the last returned.
    rate: Option<f64>,
    /// With a DPoP key, the token goes with a fresh proof by it on every request.
    dpop: Option<playbook_dpop::ProofKey>,
    /// Where the round robin over the tokens is, kept across windows: starting every window at
    /// the first token would send a slow path's first tokens again while the cache still
    /// remembers seeing them, and it would admit them.
    cursor: Arc<AtomicUsize>,
}

/// What one connection saw inside the measured window.
#[derive(Default)]
struct Seen {
    latencies_us: Vec<u32>,
    failures: u64,
}

impl Load {
    /// One warm-up and one measured window over `connections` keep-alive connections; each
    /// request carries the next of `headers` (round robin), or none when it is empty.
    fn run(&self, route: &str, headers: Arc<Vec<HeaderValue>>) -> anyhow::Result<Window> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let start = tokio::time::Instant::now();
            let from = start + self.warmup;
            let until = from + self.window;
            let next = self.cursor.clone();
            let mut connections = Vec::new();
            for index in 0..self.connections {
                let (load, headers, next) = (self.clone(), headers.clone(), next.clone());
                let uri = self.base.join(route)?.to_string();
                connections.push(tokio::spawn(async move {
                    load.connection(index, &uri, &headers, &next, from.into(), until.into())
                        .await
                }));
            }
            // A task that is always ready keeps this runtime from parking: it polls its sockets
            // between turns (tokio polls the I/O driver before running a yielded task again).
            let spinner = self.busy.then(|| {
                tokio::spawn(async {
                    loop {
                        tokio::task::yield_now().await
                    }
                })
            });
            tokio::time::sleep_until(from).await;
            let counts_before = self.cache_counts().await?;
            let perf = match &self.perf {
                Some(output) => Some(
                    tokio::process::Command::new("perf")
                        .args(["record", "--quiet", "-g", "-F", "2999", "-p"])
                        .arg(self.pid.to_string())
                        .arg("-o")
                        .arg(output)
                        .args(["--", "sleep"])
                        .arg(self.window.as_secs_f64().to_string())
                        .spawn()
                        .context("--perf needs perf (Debian: linux-perf)")?,
                ),
                None => None,
            };
            let cpu_before = cpu_seconds(self.pid)?;
            tokio::time::sleep_until(until).await;
            let cpu_after = cpu_seconds(self.pid)?;
            let counts_after = self.cache_counts().await?;
            if let Some(mut perf) = perf
                && !perf.wait().await?.success()
            {
                bail!("perf record failed: no profile was written");
            }
            if let Some(spinner) = spinner {
                spinner.abort();
            }
            let mut latencies = Vec::new();
            let mut failures = 0;
            for connection in connections {
                let seen = connection.await??;
                latencies.extend(seen.latencies_us);
                failures += seen.failures;
            }
            if failures > 0 {
                bail!(
                    "{failures} requests to {route} were not answered 200: the numbers would lie"
                );
            }
            let requests = latencies.len() as u64;
            if requests == 0 {
                bail!("no request to {route} was answered within the window");
            }
            latencies.sort_unstable();
            let percentile = |per_mille: usize| {
                let at = (latencies.len() * per_mille / 1000).min(latencies.len() - 1);
                f64::from(latencies[at]) / 1000.0
            };
            Ok(Window {
                verified_hits: hit_share(&counts_before["verified"], &counts_after["verified"]),
                introspection_hits: hit_share(
                    &counts_before["introspection"],
                    &counts_after["introspection"],
                ),
                requests,
                per_second: requests as f64 / self.window.as_secs_f64(),
                p50_ms: percentile(500),
                p99_ms: percentile(990),
                p999_ms: percentile(999),
                cpu_us_per_request: (cpu_after - cpu_before) * 1e6 / requests as f64,
                rss_mib: rss_mib(self.pid)?,
            })
        })
    }

    /// A keep-alive HTTP/1.1 connection to the target, over TLS with the client certificate.
    async fn open(
        &self,
    ) -> anyhow::Result<(
        hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
        HeaderValue,
    )> {
        let host = self.base.host_str().context("a host")?.to_owned();
        let port = self.base.port_or_known_default().context("a port")?;
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        tcp.set_nodelay(true)?;
        let name = rustls::pki_types::ServerName::try_from(host.clone())?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(connection);
        Ok((sender, HeaderValue::from_str(&format!("{host}:{port}"))?))
    }

    /// Sends each of `headers` once, in order, over one connection: the cache's filling.
    fn fill(&self, route: &str, headers: &[HeaderValue]) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let uri = self.base.join(route)?.to_string();
            let (mut sender, host) = self.open().await?;
            for header in headers {
                let request = hyper::Request::get(&uri)
                    .header(HOST, host.clone())
                    .header(AUTHORIZATION, header.clone())
                    .body(Empty::<Bytes>::new())?;
                let response = sender.send_request(request).await?;
                if response.status() != hyper::StatusCode::OK {
                    bail!("a filler token was answered {}", response.status());
                }
                response.into_body().collect().await?;
            }
            Ok(())
        })
    }

    /// One connection's requests until `until`; the `index`-th of `connections` starts its
    /// schedule that share of an interval late, so paced requests do not all leave together.
    /// A paced request's latency counts from when it was due, so a stalled server's queue shows.
    async fn connection(
        &self,
        index: usize,
        uri: &str,
        headers: &[HeaderValue],
        next: &AtomicUsize,
        from: Instant,
        until: Instant,
    ) -> anyhow::Result<Seen> {
        let (mut sender, host) = self.open().await?;
        let mut seen = Seen::default();
        let interval =
            (self.rate).map(|rate| Duration::from_secs_f64(self.connections as f64 / rate));
        let mut due = tokio::time::Instant::now()
            + interval.map_or(Duration::ZERO, |i| {
                i * index as u32 / self.connections as u32
            });
        loop {
            let sent = match interval {
                Some(interval) => {
                    tokio::time::sleep_until(due).await;
                    let sent = due.into_std();
                    due += interval;
                    sent
                }
                None => Instant::now(),
            };
            if sent >= until {
                return Ok(seen);
            }
            let mut request = hyper::Request::get(uri).header(HOST, host.clone());
            if !headers.is_empty() {
                let i = next.fetch_add(1, Ordering::Relaxed) % headers.len();
                request = request.header(AUTHORIZATION, headers[i].clone());
                if let Some(key) = &self.dpop {
                    let token = headers[i].to_str()?.split_once(' ').context("a scheme")?.1;
                    let proof = key.proof("GET", &Url::parse(uri)?, Some(token), None)?;
                    request = request.header(playbook_dpop::HEADER, proof);
                }
            }
            let response = sender
                .send_request(request.body(Empty::<Bytes>::new())?)
                .await?;
            let ok = response.status() == hyper::StatusCode::OK;
            response.into_body().collect().await?;
            let answered = Instant::now();
            if sent >= from && answered <= until {
                seen.latencies_us
                    .push((answered - sent).as_micros().min(u32::MAX as u128) as u32);
                seen.failures += u64::from(!ok);
            }
        }
    }

    /// The target's cache counters (`/bench/cache` of the load target); `Null` from a target
    /// built before it counted (whose cache, emptied when full, cannot hit a round robin over
    /// more than twice its size).
    async fn cache_counts(&self) -> anyhow::Result<serde_json::Value> {
        let answer = playbook_https::https_client(&certs().ca_pem)?
            .get(self.base.join("/bench/cache")?)
            .send()
            .await?;
        if answer.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(serde_json::Value::Null);
        }
        Ok(answer.error_for_status()?.json().await?)
    }
}

/// The share of lookups between two counter readings that were hits; `None` without lookups.
fn hit_share(before: &serde_json::Value, after: &serde_json::Value) -> Option<f64> {
    let delta = |field: &str| after[field].as_u64()?.checked_sub(before[field].as_u64()?);
    let (hits, misses) = (delta("hits")?, delta("misses")?);
    (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64)
}

/// The process's user + system CPU time so far.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // After the command name in parentheses, field 3 (state) comes first: utime and stime
    // (fields 14 and 15) are the 12th and 13th from there.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("a /proc stat line")?
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // SAFETY: sysconf only reads a constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks as f64 / per_second)
}

/// The process's resident memory now.
fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .context("VmRSS")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kib / 1024.0)
}

/// Every token of the pool, its signature checked with the realm key parsed once.
#[derive(Clone)]
struct RawVerify {
    key: Arc<aws_lc_rs::signature::ParsedPublicKey>,
    signed: Arc<Vec<(String, Vec<u8>)>>,
}

impl RawVerify {
    fn new(tokens: &[String], jwks: &serde_json::Value) -> anyhow::Result<Self> {
        let header: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD.decode(tokens[0].split('.').next().context("a JWT")?)?,
        )?;
        let kid = header["kid"].as_str().context("a kid")?;
        let jwk = jwks["keys"]
            .as_array()
            .and_then(|keys| keys.iter().find(|k| k["kid"] == kid))
            .context("the token's kid in the realm's JWKS")?;
        let component = |name: &str| -> anyhow::Result<Vec<u8>> {
            Ok(URL_SAFE_NO_PAD.decode(jwk[name].as_str().context("an RSA JWK")?)?)
        };
        let key = RsaPublicKeyComponents {
            n: component("n")?,
            e: component("e")?,
        }
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        .map_err(|e| anyhow::anyhow!("the realm key: {e}"))?;
        let signed = tokens
            .iter()
            .map(|t| {
                let (signed, signature) = t.rsplit_once('.').context("a JWT")?;
                Ok((signed.to_owned(), URL_SAFE_NO_PAD.decode(signature)?))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            key: Arc::new(key),
            signed: Arc::new(signed),
        })
    }

    /// Thread CPU time of one pass over the pool, per verification.
    fn cpu_us_per_verify(&self) -> anyhow::Result<f64> {
        let before = playbook_testkit::cpu::thread_seconds();
        for (signed, signature) in self.signed.iter() {
            self.key
                .verify_sig(signed.as_bytes(), signature)
                .map_err(|_| anyhow::anyhow!("a pool token does not verify"))?;
        }
        Ok((playbook_testkit::cpu::thread_seconds() - before) * 1e6 / self.signed.len() as f64)
    }
}

/// The medians of the rounds, and the ratios the resource server is held to.
fn summarize(results: &[(Path, Window)], raw_us: &[f64], connections: usize, busy: bool) {
    let of = |path: Path, field: fn(&Window) -> f64| {
        median(
            (results.iter())
                .filter(|(p, _)| *p == path)
                .map(|(_, w)| field(w))
                .collect(),
        )
    };
    println!(
        "\nmedians of the rounds ({connections} connections, as fast as answered):\n\n| path | server CPU µs/request | requests/s | p50 ms | p99 ms | p99.9 ms | server RSS MiB (max) |\n|---|---|---|---|---|---|---|"
    );
    for path in Path::ALL {
        if !results.iter().any(|(p, _)| *p == path) {
            continue;
        }
        let rss = (results.iter().filter(|(p, _)| *p == path))
            .map(|(_, w)| w.rss_mib)
            .fold(0.0, f64::max);
        println!(
            "| {} | {:.1} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} |",
            path.label(),
            of(path, |w| w.cpu_us_per_request),
            of(path, |w| w.per_second),
            of(path, |w| w.p50_ms),
            of(path, |w| w.p99_ms),
            of(path, |w| w.p999_ms),
            rss
        );
    }
    let floor = of(Path::NoAuth, |w| w.cpu_us_per_request);
    let same = of(Path::SameToken, |w| w.cpu_us_per_request);
    let distinct = of(Path::DistinctTokens, |w| w.cpu_us_per_request);
    let dpop = of(Path::DpopSameToken, |w| w.cpu_us_per_request);
    let raw = median(raw_us.to_vec());
    let requests: u64 = results.iter().map(|(_, w)| w.requests).sum();
    println!("\nraw RS256 verify (key parsed once): {raw:.1} µs");
    if [floor, same, distinct].iter().all(|v| v.is_finite()) {
        println!(
            "CPU per request: distinct / same {:.2}, distinct / no auth {:.2}, same / no auth {:.2}",
            distinct / same,
            distinct / floor,
            same / floor,
        );
    }
    if [floor, distinct].iter().all(|v| v.is_finite()) {
        println!(
            "a new token costs the floor + {:.2} × raw verify (target ≤ 1.3): distinct − no auth = {:.1} µs",
            (distinct - floor) / raw,
            distinct - floor,
        );
    }
    if [same, dpop].iter().all(|v| v.is_finite()) {
        println!(
            "a DPoP request (a fresh proof, same token) costs {:.2} × a bearer one with the same token: dpop − same = {:.1} µs",
            dpop / same,
            dpop - same,
        );
    }
    if busy && results.iter().any(|(p, _)| p.asks_keycloak()) {
        println!(
            "the introspection rows were loaded by a thread that sleeps between answers \
             (Keycloak needs its CPU), so they include its wake-ups, billed to the server"
        );
    }
    println!("{requests} requests measured");
}
