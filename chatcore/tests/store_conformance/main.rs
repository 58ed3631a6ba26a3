//! The `Store` conformance suite: every point of the behaviour contract on
//! `chatcore::store::Store`, checked once and run against every backend.
//!
//! Each check is an `async fn(Arc<dyn Store>)` in the module of the methods
//! it pins down; `conformance_suite!` turns every (backend, check) pair
//! into one test named `<backend>::<module>::<check>`, run on a fresh,
//! empty store. A check written but not listed there is dead code, which
//! `cargo clippy -- -D warnings` rejects.
//!
//! ```text
//! cargo test --workspace --test store_conformance
//! CHAT_TEST_MYSQL_URL=mysql://root@127.0.0.1:3306 cargo test --workspace --test store_conformance
//! ```
//!
//! MySQL/MariaDB runs only when `CHAT_TEST_MYSQL_URL` names a server
//! (without a database): each test creates its own database there and
//! drops it afterwards. Without the variable those tests are reported as
//! ignored (`harness = false`, see `chat_testkit::harness`).

mod backend;
mod conversations;
mod friends;
mod groups;
mod health;
mod helpers;
mod history;
mod inbox;
mod moderation;
mod retention;
mod send;
mod users;

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

use chatcore::store::Store;

use backend::Backend;

/// A check's future, boxed so that every check has one type.
type Checking = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One check of the contract, in the module of the methods it pins down.
#[derive(Clone, Copy)]
struct Check {
    module: &'static str,
    name: &'static str,
    run: fn(Arc<dyn Store>) -> Checking,
}

/// Every (backend, check) pair as one test, `<backend>::<module>::<check>`,
/// on a multi-thread runtime of two workers.
macro_rules! conformance_suite {
    (backends { $($backend:ident => $kind:expr),* $(,)? }
     checks { $($module:ident { $($check:ident),* $(,)? })* }) => {
        fn backends() -> Vec<(&'static str, Backend)> {
            vec![$((stringify!($backend), $kind)),*]
        }

        fn checks() -> Vec<Check> {
            vec![$($(Check {
                module: stringify!($module),
                name: stringify!($check),
                run: |store| Box::pin($module::$check(store)),
            }),*),*]
        }
    };
}

fn main() -> ExitCode {
    let tests = backends().into_iter().flat_map(|(backend_name, backend)| {
        checks().into_iter().map(move |check| {
            let name = format!("{backend_name}::{}::{}", check.module, check.name);
            chat_testkit::test(name, move || backend::run(backend, check.run))
                .needs(backend.needs())
                .multi_thread(2)
        })
    });
    chat_testkit::harness::run(tests)
}

conformance_suite! {
    backends {
        memory => Backend::Memory,
        metered_memory => Backend::MeteredMemory,
        sqlite_memory => Backend::SqliteMemory,
        sqlite_file => Backend::SqliteFile,
        mysql => Backend::Mysql,
    }
    checks {
        users {
            create_user_returns_positive_distinct_ids,
            new_user_has_empty_inbox_and_zero_cursor,
            taken_name_fails_with_name_taken,
            names_are_compared_byte_for_byte,
            exactly_one_of_racing_registrations_of_a_name_wins,
            user_returns_the_record_as_registered,
            user_of_unknown_id_is_none,
            users_lists_known_ids_ascending_and_leaves_out_unknown,
            revoke_tokens_moves_the_epoch_on,
            racing_revocations_each_get_a_higher_epoch,
            set_password_replaces_the_hash_and_revokes_tokens,
            rehash_replaces_only_the_hash_it_was_made_from,
            token_calls_on_unknown_user_fail_with_unknown_user,
        }
        friends {
            add_friend_is_mutual,
            add_friend_is_idempotent,
            add_friend_with_unknown_user_fails_with_unknown_user,
            racing_add_friend_stores_one_friendship,
            remove_friend_ends_the_friendship_both_ways,
            remove_friend_without_friendship_is_false,
            friends_are_listed_in_ascending_id_order,
        }
        groups {
            create_group_makes_the_creator_its_only_member_with_role_creator,
            create_group_returns_positive_distinct_ids,
            taken_group_name_fails_with_group_name_taken,
            create_group_by_unknown_user_fails_with_unknown_user,
            join_group_adds_a_normal_member_once,
            join_group_by_the_creator_keeps_the_creator_role,
            join_group_with_unknown_group_or_user_fails,
            leave_group_removes_the_member,
            leave_group_by_a_non_member_is_false,
            leave_unknown_group_fails_with_unknown_group,
            group_of_unknown_id_is_none,
            groups_of_lists_groups_in_ascending_id_order,
            members_are_listed_in_ascending_user_id_order,
            members_of_unknown_group_fails_with_unknown_group,
            caps_refuse_new_memberships_and_change_nothing,
            racing_joins_never_pass_a_cap,
        }
        send {
            direct_send_returns_the_stored_message,
            direct_sends_give_the_recipient_seq_1_2_3,
            direct_send_to_unknown_user_fails_and_stores_nothing,
            send_to_self_delivers_one_entry_to_the_sender,
            group_send_delivers_one_entry_to_every_member_but_the_sender,
            group_send_by_the_only_member_delivers_nothing,
            group_send_by_a_non_member_fails_with_not_member,
            group_send_to_unknown_group_fails_with_unknown_group,
            resend_with_the_same_client_msg_id_returns_the_first_message_without_deliveries,
            group_resend_with_the_same_client_msg_id_delivers_nothing,
            same_client_msg_id_from_different_senders_is_distinct_messages,
            client_msg_ids_are_compared_byte_for_byte,
            messages_without_client_msg_id_are_never_taken_for_resends,
            racing_resends_store_the_message_once,
            concurrent_sends_to_one_user_take_seqs_1_to_200_without_gaps,
            concurrent_group_and_direct_sends_keep_every_inbox_gap_free,
            a_message_in_history_is_already_in_every_recipient_inbox,
            body_round_trips_byte_for_byte,
        }
        inbox {
            inbox_after_returns_the_entries_after_a_seq_in_seq_order,
            inbox_after_returns_at_most_limit_entries,
            paging_through_the_inbox_reads_every_entry_once,
            ack_moves_the_cursor_forward,
            ack_of_a_lower_seq_keeps_the_higher_cursor,
            ack_beyond_the_last_seq_is_capped,
            ack_on_an_empty_inbox_keeps_the_cursor_at_zero,
            racing_acks_leave_the_highest_cursor,
            cursor_of_unknown_user_is_zero,
        }
        history {
            history_lists_messages_newest_first,
            history_pages_backwards_with_before,
            direct_history_is_the_same_from_both_sides,
            direct_history_excludes_other_conversations,
            group_history_lists_the_group_messages_newest_first,
            history_of_a_silent_conversation_is_empty,
        }
        conversations {
            conversations_list_both_directions_and_groups_newest_first,
            unread_counts_what_others_sent_after_the_read_position,
            mark_read_only_moves_forward,
            racing_mark_reads_leave_the_highest,
            mark_read_refuses_unknown_targets_and_non_members,
            conversations_page_backwards_with_before,
            a_left_group_and_silent_groups_are_not_listed,
            notes_to_self_are_one_conversation_with_nothing_unread,
            find_users_matches_exactly_or_by_prefix_in_name_order,
            find_users_takes_wildcards_literally,
        }
        health {
            ping_succeeds_on_a_reachable_store_and_changes_nothing,
        }
        moderation {
            a_ban_shows_in_the_record_and_revokes_tokens,
            banning_twice_keeps_the_first_time,
            lifting_a_ban_clears_it_and_keeps_tokens_revoked,
            ban_of_unknown_user_fails_with_unknown_user,
            a_deleted_user_is_unknown_everywhere,
            a_deleted_users_messages_stay_with_their_recipients,
            a_deleted_users_name_is_free_again,
            delete_of_unknown_user_fails_with_unknown_user,
        }
        retention {
            an_acknowledged_old_message_goes_and_an_unacknowledged_one_stays,
            new_messages_stay_even_when_acknowledged,
            a_group_message_goes_only_once_every_member_acknowledged,
            steps_stay_within_max_rows_and_together_prune_everything,
            a_deleted_recipients_entries_pin_nothing,
            pruning_an_empty_store_is_one_step_of_nothing,
        }
    }
}
