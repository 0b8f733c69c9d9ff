//! The C-STORE command set's identifying values (PS3.7 9.3.1): the Affected
//! SOP Instance UID must name the de-identified instance (the destination
//! checks it against the data set's), and the sender must get its own back.

use super::profile::DicomProfile;
use super::values::{map_ae, map_uids, pad, trim};
use super::vr::Vr;
use super::DeidError;
use crate::Pseudonymiser;

const AFFECTED_INSTANCE: u16 = 0x1000;
const REQUESTED_INSTANCE: u16 = 0x1001;
const MOVE_ORIGINATOR_AE: u16 = 0x1030;
/// The elements of a C-STORE-RQ (PS3.7 Table 9.3-1), and Requested SOP
/// Instance UID, rewritten like the affected one: group length, Affected SOP
/// Class UID, Command Field, Message ID, Priority, Command Data Set Type,
/// Affected SOP Instance UID, Move Originator AE Title and Message ID.
const C_STORE_RQ: [u16; 10] = [
    0x0000, 0x0002, 0x0100, 0x0110, 0x0700, 0x0800, 0x1000, 0x1001, 0x1030, 0x1031,
];

/// A command set rewritten for the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRewrite {
    /// The command set to send (implicit VR little endian, group length recomputed).
    pub command: Vec<u8>,
    /// The Affected SOP Instance UID the sender gave, to answer it with.
    pub original_instance: Option<String>,
    /// The one the destination was given (and will answer with).
    pub replaced_instance: Option<String>,
}

/// Rewrites a request's command set: only a C-STORE-RQ's elements are kept;
/// Affected and Requested SOP Instance UID
/// become [`Pseudonymiser::uid`] of themselves (the same replacement the data
/// set's SOP Instance UID gets) unless UIDs are retained, and a C-MOVE
/// originator's AE title its keyed pseudonym unless device identity is.
pub fn pseudonymise_command(
    command: &[u8],
    profile: &DicomProfile,
    p: &Pseudonymiser,
) -> Result<CommandRewrite, DeidError> {
    let mut original = None;
    let mut replaced = None;
    let elements = parse(command)?;
    let mut rewritten = Vec::with_capacity(elements.len());
    for (element, value) in elements {
        // Only what PS3.7 Table 9.3-1 gives a C-STORE-RQ goes on: any other
        // element (Error Comment, Attribute Identifier List, a sender's own)
        // could carry text past the de-identifier (found by an adversarial
        // review: the patient's name in (0000,0902)).
        if !C_STORE_RQ.contains(&element) {
            continue;
        }
        let v = match element {
            AFFECTED_INSTANCE | REQUESTED_INSTANCE if !profile.options.retain_uids => {
                let new = pad(Vr::UI, map_uids(value, p));
                if element == AFFECTED_INSTANCE {
                    original = Some(text(value));
                    replaced = Some(text(&new));
                }
                new
            }
            MOVE_ORIGINATOR_AE if !profile.options.retain_device_identity => {
                pad(Vr::AE, map_ae(value, p))
            }
            AFFECTED_INSTANCE => {
                original = Some(text(value));
                replaced = original.clone();
                value.to_vec()
            }
            _ => value.to_vec(),
        };
        rewritten.push((element, v));
    }
    Ok(CommandRewrite {
        command: encode(&rewritten),
        original_instance: original,
        replaced_instance: replaced,
    })
}

/// Rewrites the destination's response for the sender: its Affected SOP
/// Instance UID back to the sender's. A response naming an instance other
/// than the one sent is refused (it answers something else).
pub fn restore_command(response: &[u8], rewrite: &CommandRewrite) -> Result<Vec<u8>, DeidError> {
    let elements = parse(response)?;
    let mut rewritten = Vec::with_capacity(elements.len());
    for (element, value) in elements {
        let v = match (
            element,
            &rewrite.original_instance,
            &rewrite.replaced_instance,
        ) {
            (AFFECTED_INSTANCE, Some(orig), Some(sent)) => {
                if text(value) != *sent {
                    return Err(DeidError::Command(
                        "the response names an instance other than the one sent",
                    ));
                }
                pad(Vr::UI, orig.as_bytes().to_vec())
            }
            _ => value.to_vec(),
        };
        rewritten.push((element, v));
    }
    Ok(encode(&rewritten))
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(trim(v)).into_owned()
}

/// The elements of a command set (group 0000, ascending), without the group length.
fn parse(bytes: &[u8]) -> Result<Vec<(u16, &[u8])>, DeidError> {
    let mut rest = bytes;
    let mut out = Vec::new();
    let mut last: Option<u16> = None;
    while !rest.is_empty() {
        let h = rest
            .get(..8)
            .ok_or(DeidError::Command("truncated element header"))?;
        let group = u16::from_le_bytes([h[0], h[1]]);
        let element = u16::from_le_bytes([h[2], h[3]]);
        let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
        if group != 0 {
            return Err(DeidError::Command("element outside group 0000"));
        }
        if last.is_some_and(|l| l >= element) {
            return Err(DeidError::Command("elements out of order or repeated"));
        }
        last = Some(element);
        let value = rest
            .get(8..8usize.saturating_add(len))
            .ok_or(DeidError::Command("truncated element value"))?;
        rest = &rest[8 + len..];
        if element != 0 {
            out.push((element, value));
        }
    }
    Ok(out)
}

fn encode(elements: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let body: usize = elements.iter().map(|(_, v)| 8 + v.len()).sum();
    let mut out = Vec::with_capacity(body + 12);
    out.extend_from_slice(&[0, 0, 0, 0, 4, 0, 0, 0]);
    out.extend_from_slice(&(body as u32).to_le_bytes());
    for (element, v) in elements {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&element.to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SiteKey;

    fn el(element: u16, v: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0];
        b.extend_from_slice(&element.to_le_bytes());
        b.extend_from_slice(&(v.len() as u32).to_le_bytes());
        b.extend_from_slice(v);
        b
    }

    fn store_rq(instance: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend(el(0x0002, b"1.2.840.10008.5.1.4.1.1.2\0"));
        body.extend(el(0x0100, &1u16.to_le_bytes()));
        body.extend(el(0x0110, &7u16.to_le_bytes()));
        body.extend(el(0x0700, &0u16.to_le_bytes()));
        body.extend(el(0x0800, &0u16.to_le_bytes()));
        body.extend(el(0x1000, instance));
        body.extend(el(0x1030, b"MOVER_SCU "));
        body.extend(el(0x1031, &3u16.to_le_bytes()));
        let mut out = el(0x0000, &(body.len() as u32).to_le_bytes());
        out.extend(body);
        out
    }

    #[test]
    fn command_uids_are_replaced_and_restored() {
        let p = Pseudonymiser::new(&SiteKey::from_bytes([3; 32]));
        let profile = DicomProfile::default();
        let rq = store_rq(b"1.2.3.4.5\0");
        let rw = pseudonymise_command(&rq, &profile, &p).expect("rewrite");
        assert_eq!(rw.original_instance.as_deref(), Some("1.2.3.4.5"));
        assert_eq!(
            rw.replaced_instance.as_deref(),
            Some(p.uid("1.2.3.4.5").as_str())
        );
        let parsed = parse(&rw.command).expect("parse");
        let len = u32::from_le_bytes(rw.command[8..12].try_into().expect("4"));
        assert_eq!(len as usize, rw.command.len() - 12);
        let inst = parsed.iter().find(|(e, _)| *e == 0x1000).expect("1000").1;
        assert_eq!(trim(inst), p.uid("1.2.3.4.5").as_bytes());
        assert_eq!(inst.len() % 2, 0);
        let ae = parsed.iter().find(|(e, _)| *e == 0x1030).expect("1030").1;
        assert!(!ae.starts_with(b"MOVER"));
        // The response comes back with the replacement; the sender gets its own.
        let mut body = Vec::new();
        body.extend(el(0x0100, &0x8001u16.to_le_bytes()));
        body.extend(el(0x1000, &pad(Vr::UI, p.uid("1.2.3.4.5").into_bytes())));
        let mut rsp = el(0x0000, &(body.len() as u32).to_le_bytes());
        rsp.extend(body);
        let back = restore_command(&rsp, &rw).expect("restore");
        let inst = parse(&back).expect("parse")[1].1.to_vec();
        assert_eq!(inst, b"1.2.3.4.5\0");
        // A response about another instance is refused.
        let mut other = el(0x0000, &26u32.to_le_bytes());
        other.extend(el(0x1000, b"9.9.9.9.9.9.9.9\0\0"));
        assert!(restore_command(&other, &rw).is_err());
        // Retained UIDs pass unchanged.
        let mut keep = DicomProfile::default();
        keep.options.retain_uids = true;
        let rw = pseudonymise_command(&rq, &keep, &p).expect("rewrite");
        assert_eq!(rw.replaced_instance.as_deref(), Some("1.2.3.4.5"));
        assert!(pseudonymise_command(&rq[..rq.len() - 1], &profile, &p).is_err());
    }

    #[test]
    fn elements_a_c_store_rq_does_not_have_are_dropped() {
        // Found by an adversarial review: text in Error Comment (0000,0902)
        // and a sender's own element reached the destination.
        let p = Pseudonymiser::new(&SiteKey::from_bytes([3; 32]));
        let rq = store_rq(b"1.2.3.4.5\0");
        let mut body = rq[12..].to_vec();
        // Inserted in tag order: after (0000,0800), before (0000,1000).
        let at = body.len() - (8 + 10) - (8 + 10) - (8 + 2);
        let mut extra = el(0x0902, b"Pt Zebulonova MRN4711XQ ");
        extra.extend(el(0x0903, &[1, 0]));
        body.splice(at..at, extra);
        let mut with = el(0x0000, &(body.len() as u32).to_le_bytes());
        with.extend(body);
        assert!(parse(&with).is_ok());
        let rw = pseudonymise_command(&with, &DicomProfile::default(), &p).expect("rewrite");
        assert!(!rw.command.windows(10).any(|w| w == b"Zebulonova"));
        let kept: Vec<u16> = parse(&rw.command)
            .expect("parse")
            .iter()
            .map(|(e, _)| *e)
            .collect();
        assert_eq!(
            kept,
            [0x0002, 0x0100, 0x0110, 0x0700, 0x0800, 0x1000, 0x1030, 0x1031]
        );
    }
}
