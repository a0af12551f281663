//! A million short tasks through a limit-8 group keep memory flat: nothing is kept per finished task.
//!
//! Alone in its file so that no other test shares the process while resident memory is read.

use bounded_group::Group;

fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_tasks_with_limit_8_keep_memory_flat() {
    let mut group = Group::<String>::new();
    group.set_limit(Some(8)).unwrap();
    // Warm up: let the runtime and the allocator reach their working size.
    for _ in 0..10_000 {
        group.spawn(|_ctx| async { Ok(()) }).await.unwrap();
    }
    group.wait().await.unwrap();
    let Some(before) = resident_kib() else {
        eprintln!("no /proc/self/status here; skipping the memory reading");
        return;
    };
    for i in 0..1_000_000u32 {
        group
            .spawn(move |_ctx| async move {
                if i % 4 == 0 {
                    tokio::task::yield_now().await;
                }
                Ok(())
            })
            .await
            .unwrap();
    }
    group.wait().await.unwrap();
    let after = resident_kib().unwrap();
    let grown_mib = after.saturating_sub(before) / 1024;
    // One retained byte per task would already be ~1 MiB; a retained task (~200 B) would be ~190 MiB.
    assert!(
        grown_mib <= 16,
        "resident memory grew by {grown_mib} MiB over 1M tasks"
    );
}
