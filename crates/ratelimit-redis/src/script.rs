//! The two Lua scripts that keep a bucket in Redis, and the calls that run them.
//!
//! A bucket is one string key holding its theoretical arrival time (`tat`) in microseconds of Redis's
//! own clock (`TIME`): the instant at which the bucket would be full again. Microseconds keep every
//! figure exact in Lua's doubles (the epoch in microseconds is about 2^51, below 2^53). The key expires
//! when the bucket is full again, so an idle bucket costs Redis nothing.
//!
//! # Invariants
//!
//! 1. Only `RESERVE` moves a bucket's `tat` forward, and every call that changes it moves it to a value
//!    no earlier call produced (each grant adds `n * t > 0`), so a `tat` names the grant that made it.
//! 2. `GIVE_BACK` undoes a grant only while the bucket's `tat` is still the one that grant produced: no
//!    later reservation was computed from it, so taking it back cannot let two callers share an instant
//!    (by invariant 1, equality means "nothing was granted after me").
//! 3. A refused call writes nothing: a deadline that cannot be met, or a `try`, takes no time.

use std::sync::LazyLock;
use std::time::Duration;

use redis::{RedisResult, Script};

use crate::Connection;

/// Reserve `n` units: `{1, wait_us, new_tat}` when granted (the caller's instant is `wait_us` from
/// now), `{0, wait_us, 0}` when the wait would exceed `max_wait_us` (-1: no limit); nothing is written
/// then.
static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local t = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + n * t
local wait = new_tat - burst * t - now
if wait < 0 then wait = 0 end
if max_wait >= 0 and wait > max_wait then
  return {0, wait, '0'}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, wait, string.format('%.0f', new_tat)}
",
    )
});

/// Give back `n` units of a grant whose `tat` was `ARGV[1]`, if nothing was reserved after it: 1 when
/// given back, 0 when a later grant depends on it (it stays taken) or the bucket has refilled anyway.
static GIVE_BACK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('GET', KEYS[1])
if not current or tonumber(current) ~= tonumber(ARGV[1]) then
  return 0
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local back = tonumber(ARGV[1]) - tonumber(ARGV[2]) * tonumber(ARGV[3])
if back <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], string.format('%.0f', back), 'PX', math.ceil((back - now) / 1000) + 1)
end
return 1
",
    )
});

/// What one bucket costs: microseconds a unit, and the burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cost {
    pub(crate) t_us: u64,
    pub(crate) burst: u32,
}

/// The answer of `RESERVE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) granted: bool,
    pub(crate) wait: Duration,
    /// The bucket's `tat` after this grant: the token that gives it back.
    pub(crate) tat: u64,
}

/// A grant to give back: which bucket, which grant, how much.
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    pub(crate) key: String,
    pub(crate) tat: u64,
    pub(crate) n: u32,
    pub(crate) t_us: u64,
}

pub(crate) async fn reserve(
    mut conn: Connection,
    key: String,
    cost: Cost,
    n: u32,
    max_wait: Option<Duration>,
) -> RedisResult<Reply> {
    let max_wait_us: i64 = match max_wait {
        Some(max) => i64::try_from(max.as_micros()).unwrap_or(i64::MAX),
        None => -1,
    };
    let (granted, wait_us, tat): (i64, i64, String) = RESERVE
        .key(&key)
        .arg(cost.t_us)
        .arg(cost.burst)
        .arg(n)
        .arg(max_wait_us)
        .invoke_async(&mut conn)
        .await?;
    Ok(Reply {
        granted: granted == 1,
        wait: Duration::from_micros(u64::try_from(wait_us).unwrap_or(0)),
        tat: tat.parse().unwrap_or(0),
    })
}

/// Gives a grant back under invariant 2; `Ok(true)` when it was.
pub(crate) async fn give_back(mut conn: Connection, grant: &Grant) -> RedisResult<bool> {
    let given: i64 = GIVE_BACK
        .key(&grant.key)
        .arg(grant.tat)
        .arg(grant.n)
        .arg(grant.t_us)
        .invoke_async(&mut conn)
        .await?;
    Ok(given == 1)
}
