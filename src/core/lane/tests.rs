use super::*;
use crate::core::request::HeaderList;

const NOW: u64 = 1_800_000_000;
const SECRET: &str = "lane-secret-current-0123";
const OLD: &str = "lane-secret-previous-012";

fn lanes(secret: &str, previous: Option<&str>, max_age: Option<u64>) -> Lanes {
    Lanes::new(
        DEFAULT_MEMBER.into(),
        Secret::inline(secret),
        previous.map(Secret::inline),
        true,
        true,
        max_age,
        Some(0),
        vec!["stable".into(), "canary".into()],
        None,
    )
}

fn at(seconds: u64) -> Option<u64> {
    Some(seconds * 1_000_000_000)
}

fn read(l: &Lanes, baggage: &[&str]) -> Read {
    let pairs: Vec<(&str, &str)> = baggage.iter().map(|b| ("baggage", *b)).collect();
    l.read(&HeaderList::from_strs(&pairs), at(NOW))
}

#[test]
fn an_issued_member_has_the_documented_shape_and_verifies() {
    let l = lanes(SECRET, None, Some(3600));
    let value = l.issue_value("canary", NOW).unwrap();
    let parts: Vec<&str> = value.split('.').collect();
    assert_eq!(parts[..3], ["v1", "canary", "1800000000"], "{value}");
    assert_eq!(parts[3].len(), TAG_HEX);
    assert!(parts[3]
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    let v = l.verify(value.as_bytes(), at(NOW)).unwrap();
    assert_eq!(
        (v.lane.as_str(), v.issued, v.previous),
        ("canary", NOW, false)
    );
    // Deterministic: the same lane at the same second under the same secret.
    assert_eq!(l.issue_value("canary", NOW), Some(value.clone()));
    // Bound to the member's name: another name's tag does not verify here.
    let other = Lanes {
        member: "other-lane".into(),
        ..l.clone()
    };
    assert_eq!(
        other.verify(value.as_bytes(), at(NOW)),
        Err(Rejection::BadTag)
    );
}

#[test]
fn a_changed_truncated_or_foreign_member_is_refused() {
    let l = lanes(SECRET, None, Some(3600));
    let good = l.issue_value("stable", NOW).unwrap();
    let tag = good.rsplit('.').next().unwrap().to_string();
    let mut flipped = good.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
    let foreign = lanes("another-secret-entirely", None, None)
        .issue_value("canary", NOW)
        .unwrap();
    for (bad, why) in [
        (format!("v1.canary.{NOW}.{tag}"), Rejection::BadTag),
        (format!("v1.stable.{}.{tag}", NOW + 1), Rejection::BadTag),
        (String::from_utf8(flipped).unwrap(), Rejection::BadTag),
        (foreign, Rejection::BadTag),
        (good[..good.len() - 1].to_string(), Rejection::Malformed),
        (format!("{good}0"), Rejection::Malformed),
        (good.to_uppercase(), Rejection::Malformed),
        (good.replacen("v1.", "v2.", 1), Rejection::Malformed),
        (format!("v1.canary.{NOW}"), Rejection::Malformed),
        (format!("v1.canary.0{NOW}.{tag}"), Rejection::Malformed),
        (format!("v1.can ary.{NOW}.{tag}"), Rejection::Malformed),
        (format!("v1..{NOW}.{tag}"), Rejection::Malformed),
        (format!("{good}.x"), Rejection::Malformed),
        ("canary".to_string(), Rejection::Malformed),
        (String::new(), Rejection::Malformed),
    ] {
        assert_eq!(l.verify(bad.as_bytes(), at(NOW)), Err(why), "{bad}");
    }
}

#[test]
fn a_member_expires_after_max_age_and_never_comes_from_the_future() {
    let l = lanes(SECRET, None, Some(3600));
    let value = l.issue_value("canary", NOW).unwrap();
    let verify = |now| l.verify(value.as_bytes(), now).map(|v| v.issued);
    assert_eq!(verify(at(NOW + 3600)), Ok(NOW));
    assert_eq!(verify(at(NOW + 3601)), Err(Rejection::Expired));
    assert_eq!(verify(at(NOW - MAX_SKEW_SECONDS)), Ok(NOW));
    assert_eq!(
        verify(at(NOW - MAX_SKEW_SECONDS - 1)),
        Err(Rejection::Expired)
    );
    // No clock, no age: fail closed.
    assert_eq!(verify(None), Err(Rejection::Expired));
    // Without maxAge the issue time is bound by the tag but never expires.
    let ageless = lanes(SECRET, None, None);
    assert!(ageless
        .verify(value.as_bytes(), at(NOW + 10 * 86_400))
        .is_ok());
    assert!(ageless.verify(value.as_bytes(), None).is_ok());
    // The tag is checked first: a forged member is a bad tag, however old.
    let forged = format!("v1.canary.1.{}", "0".repeat(TAG_HEX));
    assert_eq!(l.verify(forged.as_bytes(), at(NOW)), Err(Rejection::BadTag));
}

#[test]
fn rotation_honours_the_previous_secret_until_it_is_dropped() {
    let before = lanes(OLD, None, None).issue_value("canary", NOW).unwrap();
    let rotated = lanes(SECRET, Some(OLD), None);
    let v = rotated.verify(before.as_bytes(), at(NOW)).unwrap();
    assert!(v.previous && v.lane.as_str() == "canary");
    // New members are issued under the current secret.
    let after = rotated.issue_value("canary", NOW).unwrap();
    assert_ne!(after, before);
    assert!(!rotated.verify(after.as_bytes(), at(NOW)).unwrap().previous);
    let dropped = lanes(SECRET, None, None);
    assert_eq!(
        dropped.verify(before.as_bytes(), at(NOW)),
        Err(Rejection::BadTag)
    );
    assert!(dropped.verify(after.as_bytes(), at(NOW)).is_ok());
}

#[test]
fn an_undeclared_lane_is_unknown_and_one_with_no_subset_falls_back() {
    let l = lanes(SECRET, None, None);
    let qa = l.issue_value("qa", NOW).unwrap();
    assert_eq!(
        l.verify(qa.as_bytes(), at(NOW)).unwrap().lane.as_str(),
        "qa"
    );
    assert_eq!(l.subset_for("qa"), Some((0, true)));
    assert_eq!(l.subset_for("canary"), Some((1, false)));
    let declared = Lanes {
        names: Some(vec!["stable".into(), "canary".into()]),
        ..l.clone()
    };
    assert_eq!(
        declared.verify(qa.as_bytes(), at(NOW)),
        Err(Rejection::UnknownLane)
    );
}

/// `reach` and `reaches` state what `verify` and `subset_for` do with a member of each lane.
#[test]
fn each_lane_reaches_what_a_following_release_makes_of_its_member() {
    let open = lanes(SECRET, None, None);
    let declared = Lanes {
        names: Some(vec!["stable".into(), "canary".into(), "qa".into()]),
        ..open.clone()
    };
    for l in [&open, &declared] {
        for lane in ["stable", "canary", "qa", "beta"] {
            let member = l.issue_value(lane, NOW).unwrap();
            let made = match l.verify(member.as_bytes(), at(NOW)) {
                Ok(v) => l.subset_for(v.lane.as_str()).map(|(s, base)| match base {
                    true => Reach::Base(s),
                    false => Reach::Subset(s),
                }),
                Err(why) => Some(Reach::Refused(why)),
            };
            assert_eq!(l.reach(lane), made, "{lane} under {:?}", l.names);
        }
    }
    assert_eq!(
        open.reaches(),
        LaneMap {
            known: vec![("stable", Reach::Subset(0)), ("canary", Reach::Subset(1))],
            other: Some(Reach::Base(0)),
        }
    );
    assert_eq!(
        declared.reaches(),
        LaneMap {
            known: vec![
                ("stable", Reach::Subset(0)),
                ("canary", Reach::Subset(1)),
                ("qa", Reach::Base(0)),
            ],
            other: Some(Reach::Refused(Rejection::UnknownLane)),
        }
    );
    // Without a base (an issuing release only), a lane no subset has reaches nothing.
    let no_base = Lanes {
        base: None,
        ..open.clone()
    };
    assert_eq!(no_base.reach("qa"), None);
    assert_eq!(no_base.reaches().other, None);
}

#[test]
fn the_member_is_read_from_baggage_and_duplicates_must_agree() {
    let l = lanes(SECRET, None, Some(3600));
    let v = l.issue_value("canary", NOW).unwrap();
    let member = format!("dial-lane={v}");
    let ok = |r: Read| matches!(r, Read::Valid(x) if x.lane.as_str() == "canary");
    assert_eq!(read(&l, &[]), Read::Absent);
    assert_eq!(read(&l, &["user.id=alice"]), Read::Absent);
    assert!(ok(read(&l, &[&member])));
    assert!(ok(read(&l, &[&format!("a=1, {member} ;p=1,b=2")])));
    // Percent-encoded as a propagator may write it.
    assert!(ok(read(
        &l,
        &[&format!("dial-lane={}", v.replace('.', "%2E"))]
    )));
    // The same member twice (two propagators, two headers) is one.
    assert!(ok(read(&l, &[&member, &member])));
    let stable = format!("dial-lane={}", l.issue_value("stable", NOW).unwrap());
    assert_eq!(
        read(&l, &[&format!("{member},{stable}")]),
        Read::Rejected(Rejection::Conflict)
    );
    assert_eq!(
        read(&l, &[&member, "dial-lane=canary"]),
        Read::Rejected(Rejection::Conflict)
    );
    assert_eq!(
        read(&l, &["dial-lane=canary"]),
        Read::Rejected(Rejection::Malformed)
    );
    // A member past W3C's limits is one no application carries: absent.
    let pad: Vec<String> = (0..MAX_MEMBERS_FOR_TEST)
        .map(|i| format!("k{i}=v"))
        .collect();
    assert_eq!(
        read(&l, &[&format!("{},{member}", pad.join(","))]),
        Read::Absent
    );
}

const MAX_MEMBERS_FOR_TEST: usize = crate::core::baggage::MAX_MEMBERS;

#[test]
fn lane_names_are_subset_names() {
    for good in ["canary", "a", "v2_beta-1", &"x".repeat(63)] {
        assert_eq!(LaneName::new(good.as_bytes()).unwrap().as_str(), good);
    }
    for bad in ["", "-a", "a.b", "a b", "é", &"x".repeat(64)] {
        assert!(LaneName::new(bad.as_bytes()).is_none(), "{bad}");
    }
}

#[test]
fn secrets_never_reach_debug_output() {
    let text = format!("{:?}", lanes(SECRET, Some(OLD), None));
    assert!(!text.contains("lane-secret"), "{text}");
}

#[test]
fn the_per_thread_caches_never_change_a_verdict() {
    let l = lanes(SECRET, Some(OLD), Some(3600));
    let value = l.issue_value("canary", NOW).unwrap();
    // Issued again from the cache: the same bytes.
    assert_eq!(l.issue_value("canary", NOW).unwrap(), value);
    assert_eq!(l.sign("canary", NOW).unwrap(), value);
    assert_ne!(l.issue_value("canary", NOW + 1).unwrap(), value);
    // Verified twice (the second from the cache); a tag one bit off is still refused.
    for _ in 0..2 {
        assert!(l.verify(value.as_bytes(), at(NOW)).is_ok());
    }
    let mut flipped = value.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
    assert_eq!(l.verify(&flipped, at(NOW)), Err(Rejection::BadTag));
    // Expiry is judged on every hit.
    assert_eq!(
        l.verify(value.as_bytes(), at(NOW + 3601)),
        Err(Rejection::Expired)
    );
    // Another instance (another policy, another secret) has its own entries.
    let other = lanes("another-secret-entirely", None, None);
    assert_eq!(
        other.verify(value.as_bytes(), at(NOW)),
        Err(Rejection::BadTag)
    );
    let clone = l.clone();
    assert!(clone.verify(value.as_bytes(), at(NOW)).is_ok());
    // Under the previous secret, remembered as such.
    let old = lanes(OLD, None, None).issue_value("stable", NOW).unwrap();
    for _ in 0..2 {
        assert!(l.verify(old.as_bytes(), at(NOW)).unwrap().previous);
    }
}
