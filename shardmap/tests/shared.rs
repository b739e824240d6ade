//! Update semantics of the published map: epochs, no-op updates, errors, and
//! readers seeing each publish.

use ringgate_shardmap::{RouterId, RouterState, ShardMap, ShardMapError, SharedShardMap};

fn shared(routers: &[u32]) -> SharedShardMap {
    SharedShardMap::new(ShardMap::new(4096, routers.iter().copied().map(RouterId)).unwrap())
}

#[test]
fn every_change_publishes_the_next_epoch() {
    let map = shared(&[1, 2]);
    assert_eq!(map.epoch(), 0);
    assert_eq!(map.add_router(RouterId(3)), Ok(1));
    assert_eq!(map.mark_down(RouterId(1)), Ok(2));
    assert_eq!(map.mark_up(RouterId(1)), Ok(3));
    assert_eq!(map.remove_router(RouterId(2)), Ok(4));
    assert_eq!(map.replace([RouterId(7), RouterId(3)]), Ok(5));
    let current = map.load();
    assert_eq!(current.epoch(), 5);
    assert_eq!(
        current.live_routers().collect::<Vec<_>>(),
        [RouterId(3), RouterId(7)]
    );
}

#[test]
fn updates_that_change_nothing_publish_nothing() {
    let map = shared(&[1, 2]);
    map.mark_down(RouterId(2)).unwrap();
    let before = map.snapshot();
    assert_eq!(map.add_router(RouterId(1)), Ok(1));
    assert_eq!(
        map.add_router(RouterId(2)),
        Ok(1),
        "adding keeps a down member down"
    );
    assert_eq!(map.remove_router(RouterId(9)), Ok(1));
    assert_eq!(map.mark_down(RouterId(2)), Ok(1));
    assert_eq!(map.mark_up(RouterId(1)), Ok(1));
    assert_eq!(map.replace([RouterId(2), RouterId(1), RouterId(1)]), Ok(1));
    assert!(std::sync::Arc::ptr_eq(&before, &map.snapshot()));
}

#[test]
fn replace_keeps_the_state_of_routers_that_stay() {
    let map = shared(&[1, 2]);
    map.mark_down(RouterId(2)).unwrap();
    map.replace([RouterId(2), RouterId(3)]).unwrap();
    let current = map.load();
    assert_eq!(current.state_of(RouterId(1)), None);
    assert_eq!(current.state_of(RouterId(2)), Some(RouterState::Down));
    assert_eq!(current.state_of(RouterId(3)), Some(RouterState::Up));
}

#[test]
fn marking_a_stranger_is_an_error_and_publishes_nothing() {
    let map = shared(&[1]);
    assert_eq!(
        map.mark_down(RouterId(5)),
        Err(ShardMapError::UnknownRouter(RouterId(5)))
    );
    assert_eq!(
        map.mark_up(RouterId(5)),
        Err(ShardMapError::UnknownRouter(RouterId(5)))
    );
    assert_eq!(map.epoch(), 0);
}

#[test]
fn no_live_router_routes_nowhere() {
    let map = shared(&[1]);
    assert_eq!(map.load().route(b"conv_456"), Some(RouterId(1)));
    map.mark_down(RouterId(1)).unwrap();
    let current = map.load();
    assert_eq!(current.route(b"conv_456"), None);
    assert_eq!(current.router_of_vshard(0), None);
    assert_eq!(current.members().len(), 1);
    assert!(ShardMap::new(4096, []).unwrap().route(b"x").is_none());
}

#[test]
fn bounds_are_enforced() {
    assert_eq!(
        ShardMap::new(0, []).unwrap_err(),
        ShardMapError::VshardCount(0)
    );
    assert_eq!(
        ShardMap::new(65_537, []).unwrap_err(),
        ShardMapError::VshardCount(65_537)
    );
    assert!(ShardMap::new(65_536, []).is_ok());
    let too_many = ShardMap::new(16, (0..1025).map(RouterId)).unwrap_err();
    assert_eq!(too_many, ShardMapError::TooManyRouters(1025));
    let map = SharedShardMap::new(ShardMap::new(16, (0..1024).map(RouterId)).unwrap());
    assert_eq!(
        map.add_router(RouterId(5000)),
        Err(ShardMapError::TooManyRouters(1025))
    );
    assert_eq!(map.epoch(), 0);
    assert_eq!(map.load().router_of_vshard(16), None, "out of range vshard");
}

#[test]
fn a_reader_sees_each_publish_and_guards_keep_old_maps() {
    let map = shared(&[1]);
    let mut reader = map.reader();
    let old = map.load();
    assert_eq!(reader.current().epoch(), 0);
    map.add_router(RouterId(2)).unwrap();
    assert_eq!(reader.current().epoch(), 1);
    assert_eq!(reader.current().live_routers().count(), 2);
    assert_eq!(old.epoch(), 0, "a guard keeps the map it loaded");
}

#[test]
fn readers_on_other_threads_see_only_whole_maps_in_epoch_order() {
    let map = shared(&[1, 2, 3]);
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let mut reader = map.reader();
            std::thread::spawn(move || {
                let mut last = 0;
                while last < 200 {
                    let current = reader.current();
                    assert!(current.epoch() >= last, "epochs never go back");
                    // A whole map: its live set matches its table.
                    let owner = current.route(b"conv_456");
                    assert_eq!(owner.is_some(), current.live_routers().next().is_some());
                    last = current.epoch();
                }
            })
        })
        .collect();
    for round in 0..100 {
        let id = RouterId(1 + round % 3);
        map.mark_down(id).unwrap();
        map.mark_up(id).unwrap();
    }
    for reader in readers {
        reader.join().unwrap();
    }
    assert_eq!(map.epoch(), 200);
}
