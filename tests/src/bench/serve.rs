//! B2: authenticated GET of a built suite from roleoutd (one session per
//! client, reused) at concurrency 1, 16 and 64 over loopback, against
//! nginx serving the same bytes as a static file over TLS with the same
//! self-signed certificate.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::bench::server::{Machine, Server};
use crate::bench::{Row, median, quantile};

/// Requests per measurement, spread over the clients.
const REQUESTS: usize = 2000;

/// nginx on a loopback port with its own configuration in a temp dir.
pub(crate) struct Nginx {
    _temp: tempfile::TempDir,
    child: Child,
    /// `https://127.0.0.1:PORT/suite.json`.
    pub(crate) url: String,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: nginx's graceful shutdown.
        roleout_tests::stop_child(
            &mut self.child,
            nix::sys::signal::Signal::SIGQUIT,
            Duration::from_secs(10),
        );
    }
}

fn nginx_program() -> anyhow::Result<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
        .context("nginx is not installed (scripts/bench.sh installs it)")
}

impl Nginx {
    /// Serves `body` as `/suite.json` with roleoutd's certificate and key.
    /// nginx serving `body` as `/suite.json` over TLS with the certificate
    /// and key in `tls` (`cert.pem`, `key.pem`).
    pub(crate) fn start(tls: &Path, body: &[u8]) -> anyhow::Result<Nginx> {
        let program = nginx_program()?;
        let temp = tempfile::Builder::new()
            .prefix("roleout-nginx-")
            .tempdir()?;
        let base_path = temp.path().to_owned();
        let base = base_path.as_path();
        fs::create_dir_all(base.join("www"))?;
        fs::create_dir_all(base.join("logs"))?;
        fs::write(base.join("www").join("suite.json"), body)?;
        let port = roleout_tests::free_port();
        let workers = std::thread::available_parallelism().map_or(1, usize::from);
        let user = if nix::unistd::geteuid().is_root() {
            "user root;"
        } else {
            ""
        };
        let config = format!(
            "{user}
worker_processes {workers};
daemon off;
pid {base}/nginx.pid;
error_log {base}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {base}/body;
    proxy_temp_path {base}/proxy;
    fastcgi_temp_path {base}/fastcgi;
    uwsgi_temp_path {base}/uwsgi;
    scgi_temp_path {base}/scgi;
    keepalive_requests 1000000;
    types {{ application/json json; }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{ root {base}/www; }}
    }}
}}
",
            base = base.display(),
            cert = tls.join("cert.pem").display(),
            key = tls.join("key.pem").display(),
        );
        let config_path = base.join("nginx.conf");
        fs::write(&config_path, config)?;
        let child = Command::new(program)
            .arg("-p")
            .arg(base)
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nginx")?;
        let mut nginx = Nginx {
            url: format!("https://127.0.0.1:{port}/suite.json"),
            _temp: temp,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                bail!(
                    "nginx exited with {status}: {}",
                    fs::read_to_string(base.join("logs/error.log")).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                bail!("nginx did not listen within 15 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(nginx)
    }
}

/// `REQUESTS` GETs of `url` by `clients` threads, each on its own kept
/// connection after one warm-up request: requests per second and every
/// latency in ms.
fn load(
    server: &Server,
    url: &str,
    session: Option<&str>,
    clients: usize,
    expected: usize,
) -> anyhow::Result<(f64, Vec<f64>)> {
    let per_client = REQUESTS.div_ceil(clients);
    let barrier = Barrier::new(clients + 1);
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let barrier = &barrier;
                scope.spawn(move || -> anyhow::Result<Vec<f64>> {
                    let agent = server.agent();
                    let get = |agent: &ureq::Agent| -> anyhow::Result<()> {
                        let body = crate::bench::checkin::get(agent, url, session)?;
                        if body.len().abs_diff(expected) > 64 {
                            bail!("{url} answered {} bytes", body.len());
                        }
                        Ok(())
                    };
                    let warm = agent.as_ref().map_err(|error| anyhow::anyhow!("{error:#}"));
                    let warmed = warm.and_then(&get);
                    barrier.wait();
                    warmed?;
                    let agent = agent?;
                    let mut latencies = Vec::with_capacity(per_client);
                    for _ in 0..per_client {
                        let start = Instant::now();
                        get(&agent)?;
                        latencies.push(start.elapsed().as_secs_f64() * 1000.0);
                    }
                    Ok(latencies)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let latencies: Vec<anyhow::Result<Vec<f64>>> = handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a client thread panicked")))
            })
            .collect();
        (start.elapsed(), latencies)
    });
    let (elapsed, per_thread) = results;
    let mut latencies = Vec::with_capacity(REQUESTS);
    for result in per_thread {
        latencies.extend(result?);
    }
    Ok((latencies.len() as f64 / elapsed.as_secs_f64(), latencies))
}

/// The B2 rows, one per concurrency.
pub(crate) fn run(runs: usize) -> anyhow::Result<Vec<Row>> {
    let server = Server::start()?;
    let agent = server.agent()?;
    let machine = Machine::enroll(&server, &agent, "bench-serve")?;
    server.grant(&machine.name, "developer")?;
    let session = machine.session(&server, &agent)?;
    let suite_url = format!("{}/v1/suites/domino", server.base_url);
    let mut response = agent
        .get(&suite_url)
        .header("Authorization", format!("Bearer {session}"))
        .call()?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_vec()?;
    if status != 200 {
        bail!(
            "GET /v1/suites/domino answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let nginx = Nginx::start(&server.state.path().join("tls"), &body)?;
    let mut rows = Vec::new();
    for clients in [1, 16, 64] {
        let (mut a, mut b, mut a_p99, mut b_p99) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let (rate, latencies) = load(&server, &suite_url, Some(&session), clients, body.len())?;
            a.push(rate);
            a_p99.push(quantile(&latencies, 0.99));
            let (rate, latencies) = load(&server, &nginx.url, None, clients, body.len())?;
            b.push(rate);
            b_p99.push(quantile(&latencies, 0.99));
        }
        let (a, b) = (median(&a), median(&b));
        let figure = a / b;
        let checked = clients == 64;
        rows.push(Row {
            id: "B2".to_owned(),
            label: format!("GET signed suite, concurrency {clients} (req/s)"),
            a,
            b: Some(b),
            unit: "/s",
            figure,
            target: if checked {
                "A/B >= 0.7"
            } else {
                "(informative)"
            }
            .to_owned(),
            met: !checked || figure >= 0.7,
            notes: format!(
                "p99 A {:.2} ms, B {:.2} ms; {} bytes; {REQUESTS} requests per run",
                median(&a_p99),
                median(&b_p99),
                body.len()
            ),
        });
    }
    Ok(rows)
}
