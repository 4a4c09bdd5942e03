use super::*;
use crate::mongo::fake::member;

fn up(m: Member, h: Hello) -> Observed {
    Observed {
        member: m,
        hello: Ok(h),
    }
}

fn down(m: Member) -> Observed {
    let endpoint = m.node.endpoint.clone();
    Observed {
        member: m,
        hello: Err(MemberError::Down {
            endpoint,
            source: "connection refused".into(),
        }),
    }
}

fn hello(set: &str, primary: bool, election: Option<&str>) -> Hello {
    Hello {
        set_name: Some(set.to_owned()),
        writable_primary: primary,
        secondary: !primary,
        election_id: election.map(str::to_owned),
        ..Hello::default()
    }
}

fn d(n: u8) -> Member {
    member(
        &format!("i-0000000000000000{n}"),
        &format!("d{n}:27017"),
        Kind::Data,
    )
}

#[test]
fn one_primary_is_the_primary() {
    let obs = vec![
        up(d(1), hello("s", false, None)),
        up(d(2), hello("s", true, Some("7fffffff0000000000000002"))),
        down(d(3)),
    ];
    let (finding, findings) = choose(&obs);
    assert!(
        matches!(finding, Finding::Primary { ref member, .. } if member.node.instance_id == "i-00000000000000002")
    );
    assert!(findings.is_empty());
    let states: Vec<&str> = view(&obs).iter().map(|v| v.state).collect();
    assert_eq!(states, ["secondary", "primary", "down"]);
}

#[test]
fn two_claims_are_settled_by_the_newer_election() {
    let obs = vec![
        up(d(1), hello("s", true, Some("7fffffff0000000000000003"))),
        up(d(2), hello("s", true, Some("7fffffff0000000000000004"))),
    ];
    let (finding, findings) = choose(&obs);
    assert!(
        matches!(finding, Finding::Primary { ref member, .. } if member.node.instance_id == "i-00000000000000002")
    );
    assert_eq!(findings.len(), 1);
    assert!(findings[0].contains("older election"), "{findings:?}");
}

#[test]
fn two_claims_without_election_ids_decide_nothing() {
    let obs = vec![up(d(1), hello("s", true, None)), up(d(2), hello("s", true, None))];
    assert!(matches!(choose(&obs).0, Finding::NoPrimary { .. }));
    let same = Some("7fffffff0000000000000003");
    let obs = vec![up(d(1), hello("s", true, same)), up(d(2), hello("s", true, same))];
    assert!(matches!(choose(&obs).0, Finding::NoPrimary { .. }));
}

#[test]
fn no_primary_is_an_election_or_an_unreachable_primary() {
    let obs = vec![
        up(d(1), hello("s", false, None)),
        up(d(2), hello("s", false, None)),
    ];
    let (finding, _) = choose(&obs);
    assert!(matches!(finding, Finding::NoPrimary { ref reason } if reason.contains("election")));
    let mut h = hello("s", false, None);
    h.primary = Some("d9:27017".into());
    let (finding, _) = choose(&[up(d(1), h), down(d(2))]);
    assert!(
        matches!(finding, Finding::NoPrimary { ref reason } if reason.contains("d9:27017")),
        "{finding:?}"
    );
}

#[test]
fn nobody_answering_is_unreachable() {
    let (finding, _) = choose(&[down(d(1)), down(d(2))]);
    assert!(
        matches!(finding, Finding::Unreachable { ref reason } if reason.contains("d1:27017") && reason.contains("d2:27017"))
    );
    assert!(matches!(choose(&[]).0, Finding::Unreachable { .. }));
}

#[test]
fn members_of_different_sets_decide_nothing() {
    let obs = vec![
        up(d(1), hello("one", true, Some("7fffffff0000000000000001"))),
        up(d(2), hello("two", false, None)),
    ];
    let (finding, _) = choose(&obs);
    assert!(
        matches!(finding, Finding::Conflict { ref reason } if reason.contains("\"one\"") && reason.contains("\"two\""))
    );
}

#[test]
fn a_member_not_yet_in_the_set_is_reported_not_counted() {
    let obs = vec![
        up(d(1), hello("s", true, Some("7fffffff0000000000000001"))),
        up(d(2), Hello::default()),
    ];
    let (finding, findings) = choose(&obs);
    assert!(matches!(finding, Finding::Primary { .. }));
    assert!(findings[0].contains("not in the set yet"), "{findings:?}");
    assert_eq!(view(&obs)[1].state, "not-in-set");
}
