//! Helpers for the workspace's own tests, benches and examples.

#[cfg(feature = "redis")]
pub mod redis_cluster;
#[cfg(feature = "redis")]
pub mod redis_server;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A task that counts how often its thread comes back to it, for as long as it lives: on a
/// current_thread runtime, how often the code under test let the thread's other tasks run.
#[derive(Debug)]
pub struct Ticker {
    ticks: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Ticker {
    /// Spawns the counting task on the current runtime.
    pub fn start() -> Self {
        let ticks = Arc::new(AtomicUsize::new(0));
        let counting = ticks.clone();
        let task = tokio::spawn(async move {
            loop {
                counting.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        });
        Ticker { ticks, task }
    }

    /// How many times the task has run so far.
    pub fn ticks(&self) -> usize {
        self.ticks.load(Ordering::Relaxed)
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls `fut` once, with the calling task's waker, and says what it answered: a test's way to see
/// a future wait (and register its wake-up) before the test changes what it waits for.
pub async fn poll_once<F: Future + Unpin>(fut: &mut F) -> std::task::Poll<F::Output> {
    std::future::poll_fn(|cx| std::task::Poll::Ready(std::pin::Pin::new(&mut *fut).poll(cx))).await
}

/// Polls `fut` to its end on this thread, parking it between wake-ups: an executor outside any tokio
/// runtime, as a thread of a service's own (a signal handler, a synchronous `Drop`) has.
pub fn block_on_this_thread<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let std::task::Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// How many bytes a [`large_future`] keeps across its await: half the 2 MiB stack of a tokio worker
/// thread.
pub const LARGE_FUTURE: usize = 1 << 20;

/// A future that keeps [`LARGE_FUTURE`] bytes across an await, as a task with a large buffer in its
/// state does, and then returns `value` (or an error, had the buffer changed).
pub fn large_future<T, E>(value: T) -> impl Future<Output = Result<T, E>> + Send + 'static
where
    T: Send + 'static,
    E: From<String> + Send + 'static,
{
    future_of_size::<LARGE_FUTURE, T, E>(value)
}

/// A future that keeps `BYTES` bytes across an await, and then returns `value` (or an error, had
/// they changed).
pub async fn future_of_size<const BYTES: usize, T, E>(value: T) -> Result<T, E>
where
    E: From<String>,
{
    let mut buffer = [0u8; BYTES];
    buffer[BYTES - 1] = 1;
    tokio::task::yield_now().await;
    match std::hint::black_box(&buffer)[BYTES - 1] {
        1 => Ok(value),
        other => Err(E::from(format!("the buffer's last byte became {other}"))),
    }
}

/// How many bytes a closure carries by value in the tests of a large closure: 32 times tokio's
/// threshold for boxing a task's future in a debug build.
pub const LARGE_CLOSURE: usize = 64 << 10;

/// `BYTES` bytes in a box, the last of them 1, made without passing through the stack. Moved out of
/// the box (`*carried::<N>()`), they are a buffer that a `move` closure can carry by value.
pub fn carried<const BYTES: usize>() -> Box<[u8; BYTES]> {
    let mut bytes = vec![0u8; BYTES];
    bytes[BYTES - 1] = 1;
    bytes
        .into_boxed_slice()
        .try_into()
        .expect("a slice of BYTES bytes")
}

/// What a closure that carries `carried` returns when called: a small future, which awaits once
/// and returns `value`, or an error had the last byte of `carried` changed on the way.
pub fn reading<const BYTES: usize, T, E>(
    carried: [u8; BYTES],
    value: T,
) -> impl Future<Output = Result<T, E>> + Send + 'static
where
    T: Send + 'static,
    E: From<String> + Send + 'static,
{
    let last = std::hint::black_box(&carried)[BYTES - 1];
    async move {
        tokio::task::yield_now().await;
        match last {
            1 => Ok(value),
            other => Err(E::from(format!(
                "the carried buffer's last byte became {other}"
            ))),
        }
    }
}

/// Runs `test` on a multi-thread runtime of two workers, as a task on one of them, then on a
/// current-thread runtime on a thread of its own: each time on a stack of 2 MiB, the size tokio
/// gives its worker threads.
pub fn on_worker_stacks<F, Fut>(test: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    const WORKER_STACK: usize = 2 << 20;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(WORKER_STACK)
        .enable_all()
        .build()
        .expect("a multi-thread runtime");
    let task = runtime.spawn(test());
    if let Err(failed) = runtime.block_on(task) {
        std::panic::resume_unwind(failed.into_panic());
    }
    drop(runtime);
    let thread = std::thread::Builder::new()
        .name("current_thread".into())
        .stack_size(WORKER_STACK)
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime")
                .block_on(test());
        })
        .expect("a thread for the current-thread runtime");
    if let Err(payload) = thread.join() {
        std::panic::resume_unwind(payload);
    }
}

/// Keeps the reports of the panics a test makes on purpose (those whose message ends with "on
/// purpose") out of the log, and every other panic in it. Installed once per test binary, however
/// many tests call it.
pub fn quiet_planned_panics() {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or_default();
            if !message.ends_with("on purpose") {
                report(info);
            }
        }));
    });
}

use metrics_util::CompositeKey;
use metrics_util::debugging::{DebugValue, Snapshotter};

/// One snapshot of a debugging recorder. The recorder hands out each value once (a snapshot resets
/// it), so a test reads everything it needs from one snapshot.
#[derive(Debug)]
pub struct Readings(Vec<(CompositeKey, bool, V)>);

/// A value read back, in a form tests can compare and copy.
#[derive(Clone, Debug, PartialEq)]
pub enum V {
    /// A counter's count since the last snapshot.
    Counter(u64),
    /// A gauge's level.
    Gauge(f64),
    /// A histogram's values since the last snapshot, in the order recorded.
    Histogram(Vec<f64>),
}

impl Readings {
    /// Takes one snapshot.
    pub fn take(snapshotter: &Snapshotter) -> Self {
        let values = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(k, _, description, v)| {
                let v = match v {
                    DebugValue::Counter(n) => V::Counter(n),
                    DebugValue::Gauge(g) => V::Gauge(g.into_inner()),
                    DebugValue::Histogram(h) => {
                        V::Histogram(h.into_iter().map(|x| x.into_inner()).collect())
                    }
                };
                (k, description.is_some(), v)
            });
        Readings(values.collect())
    }

    /// The names of the metrics read that came without a description (the `# HELP` line a
    /// Prometheus exporter prints), each once.
    pub fn undescribed(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .0
            .iter()
            .filter(|(_, described, _)| !described)
            .map(|(key, _, _)| key.key().name().to_owned())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The value of the metric named `name` whose labels include `labels`.
    ///
    /// # Panics
    ///
    /// When there is no such metric.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> V {
        self.0
            .iter()
            .find(|(key, _, _)| {
                let key = key.key();
                key.name() == name
                    && labels
                        .iter()
                        .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
            })
            .map(|(_, _, value)| value.clone())
            .unwrap_or_else(|| panic!("no metric {name} {labels:?}"))
    }
}

/// Spans and events captured by the layer of [`Captured::subscriber`].
#[derive(Clone, Debug, Default)]
pub struct Captured {
    inner: std::sync::Arc<std::sync::Mutex<Log>>,
}

#[derive(Debug, Default)]
struct Log {
    /// Each span created: its name, its fields as text, and its parent's name.
    spans: Vec<SpanRecord>,
    /// Each event: its level, its message and fields as text, and the names of the spans it was in.
    events: Vec<EventRecord>,
}

/// A span as created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanRecord {
    /// The span's name.
    pub name: String,
    /// Its target (what a subscriber's filter matches, `bounded_pool=debug` say).
    pub target: String,
    /// Its fields, `name=value` separated by spaces.
    pub fields: String,
    /// The name of its parent span, if it had one.
    pub parent: Option<String>,
}

/// An event as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    /// `ERROR`, `WARN`, ...
    pub level: String,
    /// Its target (what a subscriber's filter matches).
    pub target: String,
    /// Its fields (the message first), `name=value` separated by spaces.
    pub fields: String,
    /// The spans it was recorded in, innermost first.
    pub scope: Vec<String>,
}

impl Captured {
    /// A subscriber that records into this capture.
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + use<> {
        use tracing_subscriber::layer::SubscriberExt;
        tracing_subscriber::registry().with(Capture(self.clone()))
    }

    /// The spans created so far.
    pub fn spans(&self) -> Vec<SpanRecord> {
        self.inner.lock().unwrap().spans.clone()
    }

    /// The events recorded so far.
    pub fn events(&self) -> Vec<EventRecord> {
        self.inner.lock().unwrap().events.clone()
    }
}

/// The layer behind [`Captured::subscriber`].
struct Capture(Captured);

#[derive(Default)]
struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        self.0.push_str(&format!("{}={value:?}", field.name()));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        self.0.push_str(&format!("{}={value}", field.name()));
    }
}

impl<S> tracing_subscriber::Layer<S> for Capture
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let span = ctx.span(id).expect("a new span is registered");
        let parent = span.parent().map(|p| p.name().to_owned());
        self.0.inner.lock().unwrap().spans.push(SpanRecord {
            name: span.name().to_owned(),
            target: span.metadata().target().to_owned(),
            fields: fields.0,
            parent,
        });
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let scope = ctx
            .event_scope(event)
            .map(|scope| scope.map(|span| span.name().to_owned()).collect())
            .unwrap_or_default();
        self.0.inner.lock().unwrap().events.push(EventRecord {
            level: event.metadata().level().to_string(),
            target: event.metadata().target().to_owned(),
            fields: fields.0,
            scope,
        });
    }
}
