use crate::{MAX_ROUTERS, MAX_VSHARDS, RouterId};

/// Why a shard map could not be built or updated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShardMapError {
    /// The virtual shard count is 0 or above [`MAX_VSHARDS`].
    #[error("virtual shard count {0} is outside 1..={MAX_VSHARDS}")]
    VshardCount(u32),
    /// More member routers than [`MAX_ROUTERS`].
    #[error("{0} routers exceed the limit of {MAX_ROUTERS}")]
    TooManyRouters(usize),
    /// A state change named a router that is not a member.
    #[error("{0} is not a member of the shard map")]
    UnknownRouter(RouterId),
}
