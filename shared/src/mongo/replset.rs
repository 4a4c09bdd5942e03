//! The replica-set configuration logic of replset-tasks: from the set's
//! config (`replSetGetConfig`) and its members' health
//! (`replSetGetStatus`), the config one membership task asks for, to be
//! sent with `replSetReconfig` to the primary. The book's tasks were
//! `rs.add()` / `rs.remove()` strings run blind; deciding here, on typed
//! data and with no I/O, lets every rule be tested and lets a task that
//! is already applied (a duplicate delivery, a retry after success) be
//! recognised instead of failing or being applied twice.
//!
//! MongoDB 4.4+ rules (the driver needs 4.4+): at most 50 members and 7
//! voting ones; the primary sets `term` itself and refuses the internal
//! `newlyAdded` field in a user's config, so neither is ever sent back.
//! Whatever else the config holds is kept verbatim: a reconfig must never
//! drop a setting this code does not know about.

use std::collections::BTreeSet;
use std::net::Ipv6Addr;

use mongodb::bson::{Bson, Document};
use serde::Serialize;

pub const MAX_VOTING_MEMBERS: usize = 7;
pub const MAX_MEMBERS: usize = 50;
pub const DEFAULT_PORT: u16 = 27017;

/// `replSetGetStatus` member states that mean "taking part in the set".
const PRIMARY: i32 = 1;
const SECONDARY: i32 = 2;
const ARBITER: i32 = 7;

/// Config fields held typed, so not in `rest`.
const CONFIG_TYPED: [&str; 3] = ["_id", "version", "members"];
/// Config fields the primary owns: in 4.4+ it sets `term` on every
/// reconfig, and a user's config must not carry one.
const CONFIG_DROPPED: [&str; 1] = ["term"];
const MEMBER_TYPED: [&str; 6] = ["_id", "host", "arbiterOnly", "votes", "priority", "hidden"];
/// Member fields the primary owns: `newlyAdded` marks a member that has
/// not caught up yet, and `replSetReconfig` refuses it from a user.
const MEMBER_DROPPED: [&str; 1] = ["newlyAdded"];

/// A replica set config document, with the fields we reason about typed
/// and everything else kept verbatim, so a reconfig never drops settings
/// it does not know.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplSetConfig {
    pub id: String,
    pub version: i64,
    pub members: Vec<MemberConfig>,
    pub rest: Document,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemberConfig {
    pub id: i64,
    pub host: String,
    pub arbiter_only: bool,
    pub votes: i64,
    pub priority: f64,
    pub hidden: bool,
    pub rest: Document,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Data,
    Arbiter,
}

/// One member as replSetGetStatus reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberHealth {
    pub host: String,
    pub health: f64,
    pub state: i32,
    /// The last operation it applied (`optimeDate`), for its lag behind the
    /// primary; `None` for an arbiter (it holds no data) and for a member
    /// the reporter cannot hear from (mongod then says 1970-01-01).
    pub optime: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one Decision per task, moved once: boxing would only add an allocation and a deref at every use"
)]
pub enum Decision {
    /// Nothing to do: the task is already applied (a duplicate or a retry
    /// after success).
    Unchanged { reason: String },
    /// Send `config` (version + 1) with replSetReconfig. `member` is the
    /// member added or removed; `note` anything the operator should know.
    Reconfig {
        config: ReplSetConfig,
        member: MemberConfig,
        note: Option<String>,
    },
}

/// Why a task is not applied. Only a refusal that a change of health can
/// lift is retryable; the others need a person (or a different task).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("{host:?} cannot be a member of {set}: {reason}.")]
    InvalidHost {
        set: String,
        host: String,
        reason: String,
    },
    #[error(
        "{host} is {} member of {set} (_id {id}) and the task wants {}: a member never changes kind in place; remove it first.",
        article(.is),
        article(.wanted)
    )]
    KindConflict {
        set: String,
        host: String,
        id: i64,
        is: Kind,
        wanted: Kind,
    },
    #[error(
        "{host} cannot be added to {set}: the set already has {members} members, MongoDB's limit is {MAX_MEMBERS}."
    )]
    TooManyMembers {
        set: String,
        host: String,
        members: usize,
    },
    #[error(
        "The arbiter {host} cannot be added to {set}: the set already has {voting} voting members, MongoDB's limit is {MAX_VOTING_MEMBERS}, and an arbiter without a vote does nothing."
    )]
    ArbiterWithoutVote {
        set: String,
        host: String,
        voting: usize,
    },
    #[error(
        "{host} is the primary of {set}: it must step down (the step-down-if-primary task) before it is removed."
    )]
    IsPrimary { set: String, host: String },
    #[error("{host} is the last data member of {set}: removing it would leave the set without its data.")]
    LastDataMember { set: String, host: String },
    #[error("{}", no_majority(.set, .host, .voting, .up))]
    NoMajority {
        set: String,
        host: String,
        /// Voting members after the removal.
        voting: usize,
        /// How many of those are up.
        up: usize,
    },
}

impl Refusal {
    /// Whether trying again later may succeed (health can change; a
    /// conflict cannot).
    pub fn is_retryable(&self) -> bool {
        match self {
            // The step-down task that precedes a remove makes it a
            // secondary, and down members come back.
            Refusal::IsPrimary { .. } | Refusal::NoMajority { .. } => true,
            Refusal::InvalidHost { .. }
            | Refusal::KindConflict { .. }
            | Refusal::TooManyMembers { .. }
            | Refusal::ArbiterWithoutVote { .. }
            | Refusal::LastDataMember { .. } => false,
        }
    }
}

fn article(kind: &Kind) -> &'static str {
    match kind {
        Kind::Data => "a data",
        Kind::Arbiter => "an arbiter",
    }
}

fn no_majority(set: &str, host: &str, voting: &usize, up: &usize) -> String {
    if *voting == 0 {
        return format!(
            "Removing {host} from {set} would leave no voting member: a set without one cannot elect a primary."
        );
    }
    format!(
        "Removing {host} from {set} would leave {voting} voting members of which {up} are up: a majority, {}, must be up for the set to keep a primary.",
        voting / 2 + 1
    )
}

impl ReplSetConfig {
    /// Reads the `config` document of replSetGetConfig. Errors name the
    /// field and why (e.g. "members[2].host: missing").
    pub fn from_document(doc: &Document) -> Result<Self, String> {
        let id = match doc.get("_id") {
            Some(Bson::String(s)) => s.clone(),
            Some(other) => {
                return Err(format!(
                    "_id: expected the set's name, a string, found {}",
                    type_of(other)
                ));
            }
            None => return Err("_id: missing".to_owned()),
        };
        let version = integer_field(doc, "", "version")?.ok_or_else(|| "version: missing".to_owned())?;
        // The next version is version + 1, which must still be an i64.
        if !(0..i64::MAX).contains(&version) {
            return Err(format!("version: {version} is out of range"));
        }
        let members = match doc.get("members") {
            Some(Bson::Array(members)) => members,
            Some(other) => return Err(format!("members: expected an array, found {}", type_of(other))),
            None => return Err("members: missing".to_owned()),
        };
        let members = members
            .iter()
            .enumerate()
            .map(|(i, m)| MemberConfig::from_bson(i, m))
            .collect::<Result<Vec<_>, _>>()?;
        // The next-_id and by-host rules assume both are unique, as
        // MongoDB guarantees; a config breaking that is not one to edit.
        for (i, m) in members.iter().enumerate() {
            if let Some(j) = members[..i].iter().position(|o| o.id == m.id) {
                return Err(format!(
                    "members[{i}]._id: {} is also the _id of members[{j}]",
                    m.id
                ));
            }
            if let Some(j) = members[..i].iter().position(|o| same_host(&o.host, &m.host)) {
                return Err(format!(
                    "members[{i}].host: {} is also the host of members[{j}]",
                    m.host
                ));
            }
        }
        Ok(ReplSetConfig {
            id,
            version,
            members,
            rest: kept(doc, &CONFIG_TYPED, &CONFIG_DROPPED),
        })
    }

    /// The document to send with replSetReconfig: `_id`, `version`,
    /// `members`, then every other kept field in its original order,
    /// without `term` or any member's `newlyAdded`.
    pub fn to_document(&self) -> Document {
        let mut doc = Document::new();
        doc.insert("_id", self.id.clone());
        doc.insert("version", int(self.version));
        doc.insert(
            "members",
            self.members
                .iter()
                .map(|m| Bson::Document(m.to_document()))
                .collect::<Vec<_>>(),
        );
        extend(&mut doc, &self.rest, &CONFIG_TYPED, &CONFIG_DROPPED);
        doc
    }

    pub fn member(&self, host: &str) -> Option<&MemberConfig> {
        self.members.iter().find(|m| same_host(&m.host, host))
    }

    /// Members with votes > 0.
    pub fn voting(&self) -> usize {
        self.members.iter().filter(|m| m.votes > 0).count()
    }

    /// This config with `members` and the next version.
    fn next(&self, members: Vec<MemberConfig>) -> ReplSetConfig {
        ReplSetConfig {
            id: self.id.clone(),
            // Cannot saturate for a parsed config (from_document refuses
            // i64::MAX); a built one that did would be refused by the
            // primary as not newer, which is the right outcome.
            version: self.version.saturating_add(1),
            members,
            rest: self.rest.clone(),
        }
    }

    /// The smallest non-negative `_id` no member has: ids stay small
    /// across many replacements (4.4 allows only 0-255).
    fn free_id(&self) -> i64 {
        let used: BTreeSet<i64> = self.members.iter().map(|m| m.id).filter(|id| *id >= 0).collect();
        let mut next = 0;
        for id in used {
            if id != next {
                break;
            }
            next += 1;
        }
        next
    }
}

impl MemberConfig {
    pub fn kind(&self) -> Kind {
        if self.arbiter_only {
            Kind::Arbiter
        } else {
            Kind::Data
        }
    }

    fn from_bson(index: usize, value: &Bson) -> Result<Self, String> {
        let at = format!("members[{index}]");
        let Bson::Document(doc) = value else {
            return Err(format!("{at}: expected a document, found {}", type_of(value)));
        };
        let id = integer_field(doc, &at, "_id")?.ok_or_else(|| format!("{at}._id: missing"))?;
        let host = match doc.get("host") {
            Some(Bson::String(h)) => h.clone(),
            Some(other) => return Err(format!("{at}.host: expected a string, found {}", type_of(other))),
            None => return Err(format!("{at}.host: missing")),
        };
        // Kept as MongoDB has it (a round trip changes nothing), but it
        // must be a host the comparisons can read.
        normalize_host(&host).map_err(|why| format!("{at}.host: {why}"))?;
        let arbiter_only = bool_field(doc, &at, "arbiterOnly")?.unwrap_or(false);
        Ok(MemberConfig {
            id,
            host,
            arbiter_only,
            votes: integer_field(doc, &at, "votes")?.unwrap_or(1),
            priority: number_field(doc, &at, "priority")?.unwrap_or(if arbiter_only { 0.0 } else { 1.0 }),
            hidden: bool_field(doc, &at, "hidden")?.unwrap_or(false),
            rest: kept(doc, &MEMBER_TYPED, &MEMBER_DROPPED),
        })
    }

    fn to_document(&self) -> Document {
        let mut doc = Document::new();
        doc.insert("_id", int(self.id));
        doc.insert("host", self.host.clone());
        doc.insert("arbiterOnly", self.arbiter_only);
        doc.insert("hidden", self.hidden);
        doc.insert("priority", self.priority);
        doc.insert("votes", int(self.votes));
        extend(&mut doc, &self.rest, &MEMBER_TYPED, &MEMBER_DROPPED);
        doc
    }
}

impl MemberHealth {
    /// health 1 and state PRIMARY(1), SECONDARY(2) or ARBITER(7)
    pub fn is_up(&self) -> bool {
        self.health == 1.0 && matches!(self.state, PRIMARY | SECONDARY | ARBITER)
    }
}

/// MongoDB's own integer types: Int32 where it fits, else Int64.
fn int(value: i64) -> Bson {
    i32::try_from(value).map_or(Bson::Int64(value), Bson::Int32)
}

/// The fields of `doc` other than `typed` and `dropped`, in order.
fn kept(doc: &Document, typed: &[&str], dropped: &[&str]) -> Document {
    doc.iter()
        .filter(|(k, _)| !typed.contains(&k.as_str()) && !dropped.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Appends `rest` to `doc`; a `rest` built by hand with a typed or dropped
/// key must not overwrite the typed value or smuggle the dropped one.
fn extend(doc: &mut Document, rest: &Document, typed: &[&str], dropped: &[&str]) {
    for (k, v) in kept(rest, typed, dropped) {
        doc.insert(k, v);
    }
}

fn type_of(value: &Bson) -> String {
    format!("{:?}", value.element_type())
}

fn path(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

/// An integer as MongoDB may store one: Int32, Int64, or a Double with an
/// integral value (what a shell's plain `1` becomes).
fn integer_field(doc: &Document, at: &str, key: &str) -> Result<Option<i64>, String> {
    let Some(value) = doc.get(key) else {
        return Ok(None);
    };
    match value {
        Bson::Int32(i) => Ok(Some(i64::from(*i))),
        Bson::Int64(i) => Ok(Some(*i)),
        // i64::MAX as f64 is 2^63, one past the range: hence `<`.
        Bson::Double(d) if d.fract() == 0.0 && *d >= i64::MIN as f64 && *d < i64::MAX as f64 => {
            Ok(Some(*d as i64))
        }
        Bson::Double(d) => Err(format!("{}: {d} is not an integer", path(at, key))),
        other => Err(format!(
            "{}: expected an integer, found {}",
            path(at, key),
            type_of(other)
        )),
    }
}

fn number_field(doc: &Document, at: &str, key: &str) -> Result<Option<f64>, String> {
    match doc.get(key) {
        None => Ok(None),
        Some(Bson::Double(d)) if d.is_finite() => Ok(Some(*d)),
        Some(Bson::Double(d)) => Err(format!("{}: {d} is not a finite number", path(at, key))),
        Some(Bson::Int32(i)) => Ok(Some(f64::from(*i))),
        Some(Bson::Int64(i)) => Ok(Some(*i as f64)),
        Some(other) => Err(format!(
            "{}: expected a number, found {}",
            path(at, key),
            type_of(other)
        )),
    }
}

/// A flag as MongoDB reads one: a boolean, or a number (non-zero is true).
fn bool_field(doc: &Document, at: &str, key: &str) -> Result<Option<bool>, String> {
    match doc.get(key) {
        None => Ok(None),
        Some(Bson::Boolean(b)) => Ok(Some(*b)),
        Some(Bson::Int32(i)) => Ok(Some(*i != 0)),
        Some(Bson::Int64(i)) => Ok(Some(*i != 0)),
        Some(Bson::Double(d)) => Ok(Some(*d != 0.0)),
        Some(other) => Err(format!(
            "{}: expected a boolean, found {}",
            path(at, key),
            type_of(other)
        )),
    }
}

/// Whether two `host[:port]` strings name the same member: host compared
/// case-insensitively, a missing port is 27017, IPv6 in brackets
/// ("[::1]:27017").
pub fn same_host(a: &str, b: &str) -> bool {
    match (normalize_host(a), normalize_host(b)) {
        (Ok(a), Ok(b)) => a == b,
        // Nothing invalid is ever stored, but an unreadable name still
        // equals itself.
        _ => a.eq_ignore_ascii_case(b),
    }
}

/// `host:port` with the default port added when missing; Err with a
/// reason when empty, has a bad port (not 1-65535), or a space/slash/comma.
/// Host names are lowercased and IPv6 addresses written in their short
/// form, so one member has one spelling.
pub fn normalize_host(host: &str) -> Result<String, String> {
    if host.is_empty() {
        return Err("empty".to_owned());
    }
    if host.chars().any(char::is_whitespace) {
        return Err(format!("{host:?} contains a space"));
    }
    if host.chars().any(char::is_control) {
        return Err(format!("{host:?} contains a control character"));
    }
    if host.contains('/') {
        return Err(format!(
            "{host:?} contains a '/' (a host, not a URL or a socket path)"
        ));
    }
    if host.contains(',') {
        return Err(format!("{host:?} contains a ',' (one host, not a seed list)"));
    }
    let (name, port) = if let Some(inner) = host.strip_prefix('[') {
        let Some((address, after)) = inner.split_once(']') else {
            return Err(format!("{host:?} has an unclosed '['"));
        };
        let address: Ipv6Addr = address
            .parse()
            .map_err(|_| format!("{host:?} does not have an IPv6 address in its brackets"))?;
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return Err(format!("{host:?} has {after:?} after ']' where a ':port' may be")),
            },
        };
        (format!("[{address}]"), port)
    } else {
        if host.contains('[') || host.contains(']') {
            return Err(format!("{host:?} has a bracket outside an IPv6 address"));
        }
        let (name, port) = match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        };
        if port.is_some_and(|p| p.contains(':')) {
            return Err(format!(
                "{host:?} has more than one ':' (an IPv6 address goes in brackets, as in \"[::1]:27017\")"
            ));
        }
        if name.is_empty() {
            return Err(format!("{host:?} has no host name"));
        }
        (name.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => {
            parse_port(p).ok_or_else(|| format!("{host:?} has port {p:?}, not a number from 1 to 65535"))?
        }
    };
    Ok(format!("{name}:{port}"))
}

fn parse_port(port: &str) -> Option<u16> {
    // u16's parser takes a leading '+', which no host string should have.
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse::<u16>().ok().filter(|p| *p != 0)
}

/// The config that adds `host` as a `kind` member.
pub fn add(config: &ReplSetConfig, host: &str, kind: Kind) -> Result<Decision, Refusal> {
    let set = &config.id;
    let host = normalize_host(host).map_err(|reason| Refusal::InvalidHost {
        set: set.clone(),
        host: host.to_owned(),
        reason,
    })?;
    if let Some(existing) = config.member(&host) {
        if existing.kind() == kind {
            return Ok(Decision::Unchanged {
                reason: format!(
                    "{} is already {} member of {set} (_id {})",
                    existing.host,
                    article(&kind),
                    existing.id
                ),
            });
        }
        return Err(Refusal::KindConflict {
            set: set.clone(),
            host: existing.host.clone(),
            id: existing.id,
            is: existing.kind(),
            wanted: kind,
        });
    }
    if config.members.len() >= MAX_MEMBERS {
        return Err(Refusal::TooManyMembers {
            set: set.clone(),
            host,
            members: config.members.len(),
        });
    }
    let voting = config.voting();
    let has_vote = voting < MAX_VOTING_MEMBERS;
    let note = match kind {
        Kind::Arbiter if !has_vote => {
            return Err(Refusal::ArbiterWithoutVote {
                set: set.clone(),
                host,
                voting,
            });
        }
        Kind::Data if !has_vote => Some(format!(
            "added without a vote: {set} already has {voting} voting members (MongoDB's limit is {MAX_VOTING_MEMBERS})"
        )),
        Kind::Data | Kind::Arbiter => None,
    };
    let member = MemberConfig {
        id: config.free_id(),
        host,
        arbiter_only: kind == Kind::Arbiter,
        votes: i64::from(has_vote),
        // An arbiter can never be elected; a member without a vote must
        // not be electable either (MongoDB refuses priority > 0 there).
        priority: if kind == Kind::Data && has_vote { 1.0 } else { 0.0 },
        hidden: false,
        rest: Document::new(),
    };
    let mut members = config.members.clone();
    members.push(member.clone());
    Ok(Decision::Reconfig {
        config: config.next(members),
        member,
        note,
    })
}

/// The config without `host`, if the set stays writable: never the
/// primary, never the last data member, and a majority of the voting
/// members left must be up (`health`, matched by host; absent is down).
pub fn remove(
    config: &ReplSetConfig,
    host: &str,
    primary: Option<&str>,
    health: &[MemberHealth],
) -> Result<Decision, Refusal> {
    let set = &config.id;
    let wanted = normalize_host(host).map_err(|reason| Refusal::InvalidHost {
        set: set.clone(),
        host: host.to_owned(),
        reason,
    })?;
    let Some(index) = config.members.iter().position(|m| same_host(&m.host, &wanted)) else {
        return Ok(Decision::Unchanged {
            reason: format!("{wanted} is not a member of {set}: already removed"),
        });
    };
    let removed = &config.members[index];
    if primary.is_some_and(|p| same_host(p, &removed.host)) {
        return Err(Refusal::IsPrimary {
            set: set.clone(),
            host: removed.host.clone(),
        });
    }
    let members: Vec<MemberConfig> = config
        .members
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != index)
        .map(|(_, m)| m.clone())
        .collect();
    if removed.kind() == Kind::Data && !members.iter().any(|m| m.kind() == Kind::Data) {
        return Err(Refusal::LastDataMember {
            set: set.clone(),
            host: removed.host.clone(),
        });
    }
    let voters: Vec<&MemberConfig> = members.iter().filter(|m| m.votes > 0).collect();
    // A member without a vote does not count towards any majority, so
    // taking it away cannot cost the set its primary.
    if removed.votes > 0 {
        let up = voters
            .iter()
            .filter(|m| {
                health
                    .iter()
                    .find(|h| same_host(&h.host, &m.host))
                    .is_some_and(MemberHealth::is_up)
            })
            .count();
        if voters.is_empty() || up <= voters.len() / 2 {
            return Err(Refusal::NoMajority {
                set: set.clone(),
                host: removed.host.clone(),
                voting: voters.len(),
                up,
            });
        }
    }
    let note = vote_note(set, removed, &members, voters.len());
    Ok(Decision::Reconfig {
        config: config.next(members),
        member: removed.clone(),
        note,
    })
}

/// After a voting member goes, a data member that was added without a
/// vote (the set was full) could have one now; only a person knows
/// whether it was left out on purpose, so this says so and changes nothing.
fn vote_note(set: &str, removed: &MemberConfig, members: &[MemberConfig], voting: usize) -> Option<String> {
    if removed.votes <= 0 || voting >= MAX_VOTING_MEMBERS {
        return None;
    }
    let waiting: Vec<&str> = members
        .iter()
        .filter(|m| m.votes <= 0 && m.kind() == Kind::Data)
        .map(|m| m.host.as_str())
        .collect();
    if waiting.is_empty() {
        return None;
    }
    Some(format!(
        "{set} now has {voting} voting members; {} without a vote: {} (give a vote with a reconfig if it should have one)",
        if waiting.len() == 1 {
            "one data member is"
        } else {
            "data members are"
        },
        waiting.join(", "),
    ))
}

#[cfg(test)]
#[path = "tests/replset.rs"]
mod tests;
