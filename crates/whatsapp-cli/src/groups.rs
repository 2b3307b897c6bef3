//! `wa groups` (the groups this account is in) and `wa groups info JID` (one group's metadata), as text or JSON.

use serde_json::{Value, json};
use whatsapp_client::{GroupInfo, GroupParticipant, Jid};

use crate::account;
use crate::cli::Global;
use crate::failure::{client_error, fix};

/// Lists the joined groups: one line each with the JID, subject and participant count.
pub(crate) async fn list(global: &Global, as_json: bool) -> anyhow::Result<()> {
    let (client, mut events, _) = account::linked_client(global, false).await?;
    let groups = account::interruptible(async {
        account::connect_logged_in(&client, &mut events).await?;
        (client.joined_groups().await).map_err(|error| client_error(error, "listing groups"))
    })
    .await;
    client.disconnect().await;
    let groups = groups?;
    if as_json {
        println!("{}", Value::Array(groups.iter().map(summary_json).collect()));
    } else if groups.is_empty() {
        println!("No groups");
    } else {
        for group in &groups {
            println!("{}", summary_text(group));
        }
    }
    Ok(())
}

/// Prints one group's metadata.
pub(crate) async fn info(global: &Global, group: &str, as_json: bool) -> anyhow::Result<()> {
    let group = group_jid(group)?;
    let (client, mut events, _) = account::linked_client(global, false).await?;
    let info = account::interruptible(async {
        account::connect_logged_in(&client, &mut events).await?;
        (client.group_info(&group).await).map_err(|error| client_error(error, &format!("reading {group}")))
    })
    .await;
    client.disconnect().await;
    let info = info?;
    if as_json {
        println!("{}", info_json(&info));
    } else {
        print!("{}", info_text(&info));
    }
    Ok(())
}

/// A group JID from the command line.
fn group_jid(text: &str) -> anyhow::Result<Jid> {
    let usage = "give a group JID such as 120363000000000000@g.us (`wa groups` lists them)";
    let jid: Jid = text
        .parse()
        .map_err(|_| fix(format!("wrong group {text:?}: {usage}")))?;
    let well_formed = jid.is_group()
        && !jid.user().is_empty()
        && jid.user().bytes().all(|b| b.is_ascii_digit() || b == b'-');
    if !well_formed {
        return Err(fix(format!("wrong group {text:?}: {usage}")));
    }
    Ok(jid)
}

fn count(group: &GroupInfo) -> usize {
    group
        .participant_count
        .map_or(group.participants.len(), |n| n as usize)
}

/// `JID<TAB>subject<TAB>N participants`.
pub(crate) fn summary_text(group: &GroupInfo) -> String {
    format!("{}\t{}\t{} participants", group.jid, group.subject, count(group))
}

pub(crate) fn summary_json(group: &GroupInfo) -> Value {
    json!({"jid": group.jid.to_string(), "subject": group.subject, "participants": count(group)})
}

fn role(participant: &GroupParticipant) -> &'static str {
    if participant.is_super_admin {
        "superadmin"
    } else if participant.is_admin {
        "admin"
    } else {
        "member"
    }
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

/// The metadata as lines of text.
pub(crate) fn info_text(info: &GroupInfo) -> String {
    let mut out = format!("{}\nSubject: {}\n", info.jid, info.subject);
    if let Some(owner) = &info.owner {
        out += &format!("Owner: {owner}\n");
    }
    if let Some(created) = info.created {
        out += &format!("Created: {created} (unix time)\n");
    }
    if let Some(topic) = &info.topic {
        out += &format!("Description: {}\n", topic.text);
    }
    out += &format!(
        "Only admins send: {}\nOnly admins edit info: {}\nJoin approval: {}\nMembers may add: {}\n",
        yes_no(info.announce),
        yes_no(info.locked),
        yes_no(info.join_approval_required),
        yes_no(
            info.member_add_mode
                .as_ref()
                .is_none_or(|m| m.as_str() == "all_member_add")
        ),
    );
    if let Some(timer) = info.ephemeral_timer {
        out += &format!("Disappearing messages: {timer} s\n");
    }
    out += &format!("Participants ({}):\n", count(info));
    for participant in &info.participants {
        out += &format!("  {} {}", participant.jid, role(participant));
        if let Some(lid) = participant.lid.as_ref().filter(|lid| **lid != participant.jid) {
            out += &format!(" (lid {lid})");
        }
        out += "\n";
    }
    out
}

pub(crate) fn info_json(info: &GroupInfo) -> Value {
    let jid = |j: &Option<Jid>| j.as_ref().map(Jid::to_string);
    json!({
        "jid": info.jid.to_string(),
        "subject": info.subject,
        "owner": jid(&info.owner),
        "created": info.created,
        "description": info.topic.as_ref().map(|t| t.text.clone()),
        "announce": info.announce,
        "locked": info.locked,
        "join_approval": info.join_approval_required,
        "member_add_mode": info.member_add_mode.as_ref().map(|m| m.as_str().to_owned()),
        "ephemeral_timer": info.ephemeral_timer,
        "is_community": info.is_parent,
        "linked_parent": jid(&info.linked_parent),
        "participant_count": count(info),
        "participants": info.participants.iter().map(|p| json!({
            "jid": p.jid.to_string(),
            "phone_number": jid(&p.phone_number),
            "lid": jid(&p.lid),
            "role": role(p),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_jids() {
        assert_eq!(
            group_jid("120363000000000000@g.us").unwrap().to_string(),
            "120363000000000000@g.us"
        );
        for text in [
            "",
            "15551234567",
            "15551234567@s.whatsapp.net",
            "abc@g.us",
            "@g.us",
        ] {
            let error = group_jid(text).unwrap_err();
            assert!(error.downcast_ref::<crate::failure::Fix>().is_some(), "{text}");
        }
    }

    #[test]
    fn info_as_text_and_json() {
        let info = GroupInfo {
            jid: Jid::new("120363001", Jid::GROUP_SERVER),
            subject: "Club".to_owned(),
            announce: true,
            participants: vec![GroupParticipant {
                jid: Jid::new("111", Jid::DEFAULT_USER_SERVER),
                phone_number: None,
                lid: Some(Jid::new("900", Jid::LID_SERVER)),
                is_admin: true,
                is_super_admin: true,
                display_name: None,
                error: None,
                add_request: None,
            }],
            ..GroupInfo::default()
        };
        assert_eq!(summary_text(&info), "120363001@g.us\tClub\t1 participants");
        let text = info_text(&info);
        assert!(text.contains("Only admins send: yes"), "{text}");
        assert!(
            text.contains("  111@s.whatsapp.net superadmin (lid 900@lid)"),
            "{text}"
        );
        let value = info_json(&info);
        assert_eq!(value["participants"][0]["role"], "superadmin");
        assert_eq!(value["announce"], true);
        assert_eq!(
            summary_json(&info),
            json!({"jid": "120363001@g.us", "subject": "Club", "participants": 1})
        );
    }
}
