//! The local demo with a share of all requests faulted at random by a proxy in front of moto
//! server: half refused before they reach it, a quarter taking effect and losing their answer,
//! a quarter taking effect and losing their connection. Every run still ends as it would
//! without faults (`common::assert_converged`), and the demo's own reads ride the faults out.

mod common;

use intraday_testkit as kit;
use intraday_testkit::faults::FaultProxy;

async fn faulted_demo(percent: u32, seed: u64) {
    let proxy = FaultProxy::start(kit::moto()).await.expect("proxy");
    proxy.fault_randomly(percent, seed);
    let started = std::time::Instant::now();
    let report = common::demo_through(&proxy, 180).await;
    let (refused, lost) = proxy.random_faults();
    assert!(
        refused > 10 && lost > 10,
        "faults injected: {refused} refused, {lost} lost"
    );
    common::assert_converged(&report).await;
    eprintln!(
        "{percent}%: settled in {:.1} s; faults injected: {refused} refused, {lost} answers lost or connections dropped",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a full demo; ci/test.sh runs it apart"]
async fn moto_the_demo_completes_with_a_tenth_of_requests_faulted() {
    faulted_demo(10, 0x1d7a_2026).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a full demo; ci/test.sh runs it apart"]
async fn moto_the_demo_completes_with_a_fifth_of_requests_faulted() {
    faulted_demo(20, 0x2f0b_1955).await;
}
