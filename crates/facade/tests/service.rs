//! The `service` example's HTTP service on a real socket (port 0), driven with real HTTP requests:
//! answers, 429 with `Retry-After` over the rate, 504 past a request's deadline, the metrics page, and a
//! drain that lets short requests finish and cuts long ones. Real time: the sockets are real.

#[allow(dead_code)]
#[path = "../examples/service/app.rs"]
mod app;

use std::net::SocketAddr;
use std::time::Duration;

use app::{App, Config};
use bounded::cancel::{Shutdown, live};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// One HTTP/1.1 request on its own connection: the status code, the headers (lower-cased) and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_lowercase(), body.to_owned())
}

async fn start(config: Config) -> (Shutdown, App, SocketAddr) {
    let mut shutdown = Shutdown::new();
    let app = App::new(config, &shutdown);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (server, drain) = (app.clone(), app.clone());
    shutdown.spawn("http server", move |_ctx| server.serve(listener));
    shutdown.spawn("request drain", move |ctx| async move {
        ctx.cancelled().await;
        drain.drain().await;
        Ok::<_, std::convert::Infallible>(())
    });
    (shutdown, app, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_sheds_over_the_rate_times_out_and_shows_its_metrics() {
    let config = Config {
        rate: 5,
        burst: 3,
        timeout: Duration::from_millis(200),
        drain: Duration::from_millis(100),
    };
    let (shutdown, app, addr) = start(config).await;

    let (status, _, body) = get(addr, "/work?ms=5").await;
    assert_eq!((status, body.as_str()), (200, "done\n"));

    // Ten at once against the two units left: the rest are shed at once with a Retry-After.
    let burst: Vec<_> = (0..10)
        .map(|_| tokio::spawn(get(addr, "/work?ms=5")))
        .collect();
    let mut statuses = Vec::new();
    for answer in burst {
        let (status, head, _) = answer.await.unwrap();
        if status == 429 {
            assert!(
                head.contains("retry-after: 1"),
                "a 429 says when to come back: {head}"
            );
        }
        statuses.push(status);
    }
    let shed = statuses.iter().filter(|s| **s == 429).count();
    assert!(shed >= 7, "at most 3 of 10 fit the burst: {statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );

    // Past its 200 ms deadline a request answers 504, at the deadline.
    tokio::time::sleep(Duration::from_millis(600)).await; // the bucket refills
    let start = Instant::now();
    let (status, _, _) = get(addr, "/work?ms=5000").await;
    assert_eq!(status, 504);
    assert!(
        start.elapsed() < Duration::from_millis(1000),
        "answered at the deadline: {:?}",
        start.elapsed()
    );

    let (status, _, page) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    let rejected = format!("bounded_ratelimit_rejected_total{{limiter=\"api\"}} {shed}");
    assert!(page.contains(&rejected), "{rejected} in:\n{page}");
    assert!(
        page.contains("bounded_pool_submitted_total{pool=\"receipts\"}"),
        "{page}"
    );
    assert!(
        page.contains("bounded_ratelimit_granted_total{limiter=\"api\"}"),
        "{page}"
    );
    // Each metric says what it is, for whoever reads the page or the dashboards built on it.
    for name in [
        "bounded_pool_submitted_total",
        "bounded_pool_queue_wait_seconds",
        "bounded_ratelimit_rejected_total",
    ] {
        assert!(
            page.contains(&format!("# HELP {name} ")),
            "{name} in:\n{page}"
        );
    }

    shutdown.trigger();
    let report = shutdown.wait(Duration::from_secs(5)).await;
    assert!(report.is_clean(), "{report}");
    app.receipts.shutdown().await;
    live::settle(Duration::from_secs(2))
        .await
        .expect("nothing is left running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_lets_short_requests_finish_and_cuts_long_ones_then_refuses_connections() {
    let config = Config {
        rate: 100,
        burst: 10,
        timeout: Duration::from_secs(30),
        drain: Duration::from_millis(500),
    };
    let (shutdown, app, addr) = start(config).await;
    let short = tokio::spawn(get(addr, "/work?ms=200"));
    let long = tokio::spawn(get(addr, "/work?ms=20000"));
    // Both reach their handlers before the drain starts: waited for rather than assumed after a
    // fixed sleep, which a busy machine can outlast.
    let both_in = Instant::now();
    while app.requests.in_flight().len() < 2 {
        assert!(
            both_in.elapsed() < Duration::from_secs(5),
            "two requests in flight: {:?}",
            app.requests.in_flight()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(app.requests.in_flight().len(), 2);

    let start = Instant::now();
    shutdown.trigger();
    let report = shutdown.wait(Duration::from_secs(5)).await;
    assert!(report.is_clean(), "{report}");
    assert_eq!(short.await.unwrap().0, 200, "finished within the drain");
    assert_eq!(
        long.await.unwrap().0,
        503,
        "told to stop when the drain's time was up"
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "drained in {took:?}"
    );
    assert!(
        app.requests.in_flight().is_empty(),
        "every request answered"
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no more connections after the drain"
    );
    app.receipts.shutdown().await;
    live::settle(Duration::from_secs(2))
        .await
        .expect("nothing is left running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_client_hangs_up_is_not_waited_for_by_the_drain() {
    let config = Config {
        rate: 100,
        burst: 10,
        timeout: Duration::from_secs(30),
        drain: Duration::from_secs(5),
    };
    let (shutdown, app, addr) = start(config).await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = "GET /work?ms=20000 HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let arrived = Instant::now();
    while app.requests.in_flight().is_empty() {
        assert!(
            arrived.elapsed() < Duration::from_secs(5),
            "the request arrives"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The client gives up and closes its connection; the server drops the request's work.
    drop(stream);
    let closed = Instant::now();
    while !app.requests.in_flight().is_empty() {
        assert!(
            closed.elapsed() < Duration::from_secs(5),
            "a request whose connection closed is no longer in flight: {:?}",
            app.requests.in_flight()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seen = app.requests.get(0).expect("request 0 was seen");
    assert!(seen.gone(), "{seen:?}");

    let start = Instant::now();
    shutdown.trigger();
    let report = shutdown.wait(Duration::from_secs(10)).await;
    assert!(report.is_clean(), "{report}");
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "nothing was in flight, so the drain did not wait its 5 s: {took:?}"
    );
    app.receipts.shutdown().await;
    live::settle(Duration::from_secs(2))
        .await
        .expect("nothing is left running");
}
