//! `ping`.

use std::sync::Arc;

use chatcore::store::Store;

use crate::helpers::{inbox, register};

pub(crate) async fn ping_succeeds_on_a_reachable_store_and_changes_nothing(store: Arc<dyn Store>) {
    let user = register(&store, "pinger").await;
    store.ping().await.expect("a reachable store answers ping");
    assert!(inbox(&store, user).await.is_empty());
    assert_eq!(
        store.users(&[user]).await.expect("users").len(),
        1,
        "ping leaves the data as it was"
    );
}
