//! Any node answers any call as one node would (API.md section 9).

use std::time::Duration;

use tokio::time::Instant;

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::spawn_cluster;
use crate::helpers::{full_lead, ping_lead, TestBuyer, ADMIN_TOKEN};

const BEST_KEY: &str = "bk_best";

#[tokio::test]
async fn a_ping_on_one_node_is_posted_on_another_and_every_node_sees_the_sale() {
    let cluster = spawn_cluster(3, "", vec![TestBuyer::bidding("best", "10.00")]).await;
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let ping = a.ping().await;
    assert_eq!(ping["status"], "bid", "{ping}");
    let ping_id = ping["ping_id"].as_str().unwrap();
    let (status, sold) = b.post(ping_id, full_lead(), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{sold}");
    assert_eq!(sold["status"], "sold", "{sold}");
    let lead_id = sold["lead_id"].as_str().unwrap();

    for node in &cluster.nodes {
        let (status, record) = node.get_json(&format!("/admin/leads/{lead_id}"), ADMIN_TOKEN).await;
        assert_eq!(status, StatusCode::OK, "{} has the delivery record: {record}", node.base);
        let (_, balance) = node.get_json("/v1/buyer/balance", BEST_KEY).await;
        assert_eq!(balance["balance"], "9990.00", "{}: {balance}", node.base);
        assert_eq!(balance["held"], "0.00", "{}: the hold became the sale", node.base);
    }
    // The trail, with the post made on B, reads the same from C.
    let trail = c.audit(ping_id).await;
    assert_eq!(trail["winner"], "best", "{trail}");
    assert_eq!(trail["posts"][0]["outcome"], "accepted", "{trail}");
    assert_eq!(cluster.sim("best").post_count(), 1);

    // A repeat on the third node gets the first answer and delivers nothing.
    let (_, again) = c.post(ping_id, full_lead(), json!({})).await;
    assert_eq!(again, sold);
    assert_eq!(cluster.sim("best").post_count(), 1);
}

/// A node writes each auction's trail to Redis with its next auction's holds when one comes within 20 ms
/// (one round trip fewer per auction), on its own otherwise; either way every trail reads, whole, from
/// another node.
#[tokio::test]
async fn trails_ride_along_with_the_next_auction_and_every_one_reads_from_another_node() {
    let cluster = spawn_cluster(2, "", vec![TestBuyer::bidding("best", "10.00")]).await;
    let (a, b) = (cluster.node(0), cluster.node(1));
    let client = redis::Client::open(super::redis_url()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let trail_of = |ping_id: &str| format!("gavel:{}:{{p:{ping_id}}}:audit", cluster.name);
    let mut ping_ids: Vec<String> = Vec::new();
    let mut carried = 0;
    for _ in 0..10 {
        let ping = a.ping().await;
        assert_eq!(ping["status"], "bid", "{ping}");
        // Asked at once: the previous auction's trail is in Redis already if this one's holds carried it
        // (sent on its own, it would still be waiting out its 20 ms, unless the machine stalled that long).
        if let Some(previous) = ping_ids.last() {
            let stored: bool = redis::cmd("EXISTS").arg(trail_of(previous)).query_async(&mut redis).await.unwrap();
            carried += usize::from(stored);
        }
        ping_ids.push(ping["ping_id"].as_str().unwrap().to_owned());
    }
    assert!(carried >= 5, "only {carried} of 9 trails were in Redis when the next auction answered");
    for ping_id in &ping_ids {
        let trail = b.audit(ping_id).await;
        assert_eq!((&trail["ping_id"], &trail["winner"]), (&json!(ping_id), &json!("best")), "{trail}");
    }
}

#[tokio::test]
async fn the_same_post_sent_to_two_nodes_at_once_delivers_once() {
    let slow = gavel::sim::SimBuyerSpec {
        post_latency: gavel::sim::Latency::Fixed(Duration::from_millis(100)),
        ..gavel::sim::SimBuyerSpec::bidding("10.00")
    };
    let cluster = spawn_cluster(2, "", vec![TestBuyer::new("best", slow)]).await;
    let ping = cluster.node(0).ping().await;
    let ping_id = ping["ping_id"].as_str().unwrap();
    let posts = cluster.nodes.iter().map(|node| node.post(ping_id, full_lead(), json!({})));
    let answers: Vec<(StatusCode, Value)> = join_all(posts).await;
    assert_eq!(answers[0], answers[1], "every answer is the same");
    assert_eq!(answers[0].1["status"], "sold", "{answers:?}");
    assert_eq!(cluster.sim("best").post_count(), 1, "delivered once");
}

/// A delivery whose post lock expired (its node stalled past the lock's time to live) and was taken by a later
/// post must not end that later post's turn when it finishes or gives up: a third post would deliver again.
#[tokio::test]
async fn a_post_lock_taken_over_after_its_expiry_is_not_let_go_by_its_first_holder() {
    use gavel::coordinator::redis::{PostTurn, RedisCoordinator};
    let exchange =
        super::Exchange { name: super::exchange_name(), postgres: super::postgres_url(), redis: super::redis_url() };
    super::require_stores(&exchange.postgres, &exchange.redis).await;
    let a = RedisCoordinator::connect(&exchange.redis, &exchange.name, "node-a", None).await.unwrap();
    let b = RedisCoordinator::connect(&exchange.redis, &exchange.name, "node-b", None).await.unwrap();
    let client = redis::Client::open(exchange.redis.clone()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let lock_of = |ping_id: &str| format!("gavel:{}:{{p:{ping_id}}}:lock", exchange.name);
    let (hold_for, wait) = (Duration::from_millis(200), Duration::from_secs(5));
    let turn = |node: &std::sync::Arc<RedisCoordinator>, ping_id: &'static str| {
        let node = std::sync::Arc::clone(node);
        async move {
            match node.take_post_turn(ping_id, hold_for, wait).await.expect("Redis answers") {
                PostTurn::Mine(lock) => lock,
                PostTurn::Answered(_) => panic!("nothing was answered yet"),
            }
        }
    };

    for ping_id in ["p_finished", "p_dropped"] {
        let first = turn(&a, ping_id).await;
        // The first holder stalls past the lock's time to live; a post on B takes the turn.
        tokio::time::sleep(hold_for * 2).await;
        let _second = turn(&b, ping_id).await;
        let taken: Option<String> = redis::cmd("GET").arg(lock_of(ping_id)).query_async(&mut redis).await.unwrap();
        assert!(taken.as_deref().is_some_and(|token| token.starts_with("node-b:")), "{ping_id}: {taken:?}");

        if ping_id == "p_finished" {
            first.finish(b"{}".to_vec(), Duration::from_secs(60)).await;
        } else {
            drop(first);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let still: Option<String> = redis::cmd("GET").arg(lock_of(ping_id)).query_async(&mut redis).await.unwrap();
        assert_eq!(still, taken, "{ping_id}: the later post keeps its turn");
    }
}

/// A keyed deposit sent to three nodes at once, then again to each: one deposit, every answer naming it, every
/// node's balance counting it once.
#[tokio::test]
async fn a_keyed_deposit_sent_to_every_node_at_once_is_booked_once() {
    let cluster = spawn_cluster(3, "", vec![TestBuyer::bidding("best", "10.00")]).await;
    let wire = json!({"amount": "40.00", "reference": "wire 40"});
    let path = "/admin/buyers/best/deposits";
    let copies = cluster.nodes.iter().map(|node| node.post_keyed(path, ADMIN_TOKEN, "wire-40", &wire));
    let mut answers = join_all(copies).await;
    answers
        .extend(join_all(cluster.nodes.iter().map(|node| node.post_keyed(path, ADMIN_TOKEN, "wire-40", &wire))).await);
    let deposit_id = &answers[0].1["deposit_id"];
    for (status, answer, _) in &answers {
        assert_eq!((*status, &answer["deposit_id"]), (StatusCode::CREATED, deposit_id), "{answer}");
    }
    assert_eq!(answers.iter().filter(|(_, _, replayed)| !replayed).count(), 1, "{answers:?}");
    for node in &cluster.nodes {
        assert_eq!(node.buyer("best").await["balance"], "10040.00", "{}", node.base);
    }
}

#[tokio::test]
async fn a_return_filed_on_one_node_for_a_sale_made_on_another_is_decided_anywhere() {
    let strict = TestBuyer::bidding("best", "10.00").with("[buyers.returns]\nrate_cap_percent = \"0\"");
    let cluster = spawn_cluster(3, "", vec![strict]).await;
    let ping = cluster.node(0).ping().await;
    let (_, sold) = cluster.node(0).post(ping["ping_id"].as_str().unwrap(), full_lead(), json!({})).await;
    let lead_id = sold["lead_id"].as_str().unwrap();

    let body = json!({"lead_id": lead_id, "reason": "wrong_number"});
    let (status, filed) = cluster.node(2).post_json("/v1/returns", BEST_KEY, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{filed}");
    assert_eq!(filed["status"], "pending_review", "{filed}");
    let (status, again) = cluster.node(1).post_json("/v1/returns", BEST_KEY, &body).await;
    assert_eq!((status, &again["error"]["code"]), (StatusCode::CONFLICT, &json!("already_returned")));

    let path = format!("/admin/returns/{}/approve", filed["return_id"].as_str().unwrap());
    let (status, decided) = cluster.node(1).post_json(&path, ADMIN_TOKEN, &json!({"note": "ok"})).await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    for node in &cluster.nodes {
        let (_, balance) = node.get_json("/v1/buyer/balance", BEST_KEY).await;
        assert_eq!(balance["balance"], "10000.00", "{}: credited back: {balance}", node.base);
        let (_, accounts) = node.get_json("/admin/ledger/accounts", ADMIN_TOKEN).await;
        let total: rust_decimal::Decimal = accounts["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["balance"].as_str().unwrap().parse::<rust_decimal::Decimal>().unwrap())
            .sum();
        assert!(total.is_zero(), "{}: the books sum to zero: {accounts}", node.base);
    }
    let (status, _) = cluster.node(0).post_json(&path, ADMIN_TOKEN, &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "decided once, whichever node is asked");
}

#[tokio::test]
async fn a_pause_on_one_node_excludes_the_buyer_on_another_within_a_second() {
    let cluster = spawn_cluster(2, "", vec![TestBuyer::bidding("best", "10.00")]).await;
    let (status, _) = cluster.node(0).post_json("/admin/buyers/best/pause", ADMIN_TOKEN, &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let paused_at = Instant::now();
    loop {
        let (_, answer) = cluster.node(1).ping_with(ping_lead(), json!({})).await;
        if answer["reason"] == "no_eligible_buyers" {
            let ping_id = answer["ping_id"].as_str().unwrap();
            assert_eq!(cluster.node(1).outcome_of(ping_id, "best").await["detail"], "paused");
            break;
        }
        assert!(paused_at.elapsed() < Duration::from_secs(1), "node 1 still pings the paused buyer: {answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = cluster.node(1).post_json("/admin/buyers/best/resume", ADMIN_TOKEN, &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let resumed_at = Instant::now();
    loop {
        let answer = cluster.node(0).ping().await;
        if answer["status"] == "bid" {
            break;
        }
        if resumed_at.elapsed() > Duration::from_secs(1) {
            let trail = cluster.node(0).audit(answer["ping_id"].as_str().unwrap()).await;
            let view = cluster.node(0).buyer("best").await;
            panic!("node 0 never saw the resume: {answer} {trail} {view}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_reload_on_one_node_reloads_every_node_and_the_cluster_view_lists_them() {
    let cluster = spawn_cluster(3, "", vec![TestBuyer::bidding("best", "10.00")]).await;
    let (status, view) = cluster.node(1).get_json("/admin/cluster", ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["mode"], "cluster");
    assert_eq!(view["stores"], json!({"redis": "ok", "postgres": "ok"}));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, view) = cluster.node(1).get_json("/admin/cluster", ADMIN_TOKEN).await;
        if view["nodes"].as_array().unwrap().len() == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "every node shows up within a few seconds: {view}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // One file for all: a change on disk, reloaded through one node, is in force on all within 2 s.
    let text = cluster.node(0).config_text().replace("max_bid = \"100.00\"", "max_bid = \"99.00\"");
    cluster.node(0).write_config(&text);
    let (status, reloaded) = cluster.node(0).post_json("/admin/reload", ADMIN_TOKEN, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{reloaded}");
    let revision = reloaded["revision"].clone();
    let deadline = Instant::now() + Duration::from_secs(2);
    for node in &cluster.nodes {
        loop {
            let (_, config) = node.get_json("/admin/config", ADMIN_TOKEN).await;
            if config["revision"] == revision {
                break;
            }
            assert!(Instant::now() < deadline, "{} still runs {}", node.base, config["revision"]);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn a_web_session_signed_in_on_one_node_works_on_every_node_until_it_signs_out() {
    let cluster = spawn_cluster(3, "", vec![TestBuyer::bidding("best", "10.00")]).await;
    let mut on_a = crate::web::Browser::new(cluster.node(0));
    on_a.sign_in(ADMIN_TOKEN, "/console").await;
    for node in &cluster.nodes {
        let page = on_a.at(node).get("/console").await;
        assert_eq!(page.status, StatusCode::OK, "{}: the session from node 0 works here", node.base);
    }
    // Signing out on node 2 ends it on every node.
    let on_c = on_a.at(cluster.node(2));
    let csrf = on_c.csrf("/console").await;
    let out = on_c.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let page = on_a.get("/console").await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, Some("/login")));
}
