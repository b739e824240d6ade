//! Golden vectors: the values every gateway and router must agree on, in any
//! process, on any platform, with any Rust version. They were computed
//! independently of this crate, from the spec in `hash.rs`, with the C
//! reference XXH3 (Python `xxhash` 3.x binding):
//!
//! ```text
//! vshard(key, n) = (XXH3_64(key, seed) * n) >> 64
//! weight(v, r)   = XXH3_64(le64(v) || le64(r), 0x72672e6872772e77)
//! owner(v)       = the live r with the largest (weight(v, r), r)
//! ```
//!
//! A change here is a wire-visible change: every topic would move.

use ringgate_shardmap::hash::{self, rendezvous_weight};
use ringgate_shardmap::{RouterId, ShardMap};

#[test]
fn seeds_are_the_documented_ascii_tags() {
    assert_eq!(hash::TOPIC_SEED, 0x7267_2e74_6f70_6963);
    assert_eq!(hash::USER_SEED, 0x7267_2e75_7365_722e);
    assert_eq!(hash::WEIGHT_SEED, 0x7267_2e68_7277_2e77);
}

#[test]
fn topic_to_vshard() {
    let vectors: [(&[u8], u32, u32); 5] = [
        (b"conv_456", 3813, 931),
        (b"", 3179, 776),
        (b"a", 702, 171),
        (b"general", 1873, 457),
        ("ringgate/room/\u{2713}".as_bytes(), 3209, 783),
    ];
    let default = ShardMap::new(4096, []).unwrap();
    let odd = ShardMap::new(1000, []).unwrap();
    for (topic, in_4096, in_1000) in vectors {
        assert_eq!(default.vshard_of(topic), in_4096, "{topic:?} in 4096");
        assert_eq!(odd.vshard_of(topic), in_1000, "{topic:?} in 1000");
    }
}

#[test]
fn user_to_vshard() {
    let map = ShardMap::new(4096, []).unwrap();
    assert_eq!(map.vshard_of_user(b"alice"), 1999);
    assert_eq!(map.vshard_of_user(b"user-42"), 1772);
}

#[test]
fn rendezvous_weights() {
    assert_eq!(rendezvous_weight(0, RouterId(0)), 0x6a77_6e17_eea9_ebb3);
    assert_eq!(rendezvous_weight(4095, RouterId(7)), 0x7d8e_ee3a_b5c3_b9d8);
    assert_eq!(
        rendezvous_weight(17, RouterId(u32::MAX)),
        0x2888_37df_0169_fd27
    );
}

#[test]
fn vshard_and_routers_to_router() {
    let vshards = [0, 1, 2, 100, 4095];
    let vectors: [(&[u32], [u32; 5]); 4] = [
        (&[1, 2, 3], [1, 2, 3, 1, 2]),
        (&[1, 2, 3, 4], [1, 2, 4, 1, 2]),
        (&[10, 20, 30, 40, 50], [10, 40, 10, 20, 30]),
        (
            &[0xdead_beef, 7],
            [7, 0xdead_beef, 0xdead_beef, 7, 0xdead_beef],
        ),
    ];
    for (routers, owners) in vectors {
        let map = ShardMap::new(4096, routers.iter().copied().map(RouterId)).unwrap();
        for (vshard, owner) in vshards.into_iter().zip(owners) {
            assert_eq!(
                map.router_of_vshard(vshard),
                Some(RouterId(owner)),
                "{routers:?} v{vshard}"
            );
        }
    }
}

#[test]
fn topic_to_router() {
    let map = ShardMap::new(4096, [1, 2, 3].map(RouterId)).unwrap();
    assert_eq!(map.route(b"conv_456"), map.router_of_vshard(3813));
}
