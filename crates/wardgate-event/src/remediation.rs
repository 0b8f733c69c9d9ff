//! What to do about each rule: one to three sentences for the person reading
//! the alert (SOC or clinical engineering), naming the command to run, the
//! configuration key to change and who to involve. [`Rule::why`] says what a
//! rule protects; [`remediation`] says what to do when it fires.
//!
//! One list below makes both the `match` of [`remediation`] and [`KNOWN`], so
//! the two cannot disagree; the tests hold [`KNOWN`] to the catalogue in both
//! directions, so a rule added without a remediation (or a remediation left
//! for an id the catalogue does not have) fails the build's tests.
//!
//! An infusion rule recorded as `would-block` (`enforcement = "monitor"`) or
//! `observed-violation` (passive analysis) did not stop the order: it reached
//! the pump. The hard-limit remediations say so; for the others the same holds.
//!
//! [`Rule::why`]: crate::rules::Rule::why

macro_rules! remediations {
    ($($id:literal => $text:literal,)*) => {
        /// What the reader of an alert with rule `id` should do: check,
        /// contact, change in the configuration, escalate. `None` for an id
        /// that is not in the catalogue.
        pub fn remediation(id: &str) -> Option<&'static str> {
            match id {
                $($id => Some($text),)*
                _ => None,
            }
        }

        /// Every rule id [`remediation`] answers for, in the order written.
        pub const KNOWN: &[&str] = &[$($id),*];
    };
}

remediations! {
    // TLS and identity.
    "WG-TLS-001" => "`event.reason` gives the cause. Expired or unknown issuer: check the device with `wardgate ca show`, then issue a certificate with `wardgate device enroll` for clinical engineering to install; revoked: the refusal is intended, so find out why it still tries. TLS below 1.2 or weak ciphers: ask the vendor for an update.",
    "WG-TLS-002" => "The certificate names a device id missing from the configuration (removed, renamed, or issued by another CA). If the device should connect, add a `[[device]]` with that id and run `wardgate reload`; if it was retired, run `wardgate device revoke ID` and have clinical engineering take it off the network.",
    "WG-CAP-019" => "Check whether the capture lost packets then (WG-CAP-017, tap drops): if so this is expected. If not, verify the messages of the named connection on the receiving system and look in the capture for packets injected from another MAC or TTL.",
    "WG-CAP-020" => "The bytes the receiver read in that stretch were never judged: verify the message named in `event.reason` on the receiving system. Late bytes after a reordering tap are benign; with no reordering, look for a forged acknowledgement (MAC, TTL) in the capture and escalate to the SOC.",
    "WG-CAP-022" => "A reset of the connection reached the capture but not the host that went on reading: look at the RST in the capture and who sent it (MAC, TTL). A reset injected toward one end means an attacker on the path: trace the source with the network team and escalate, and verify the named connection's messages on the receiving system.",
    "WG-CAP-023" => "Check on the receiving system whether the named connection's messages after the reset were processed (the verdicts are as if they were). A RST followed by data that no answer settles means a reset forged or lost on the path, or a sender ignoring a reset: look at the RST and the answers in the capture (MAC, TTL) and escalate if it was injected.",
    "WG-CAP-024" => "The receiving DICOM host answered a request wardgate never judged (after a capture hole). Look up the named Message ID in the receiver's log for that association and check what it stored; fix the capture loss (see the hole's event) so that messages are judged.",
    "WG-CAP-025" => "Check on the receiving system which of the named connection's messages were processed (both were judged). A SYN-ACK to a SYN inside a live connection is forged unless the host's socket had gone: look at the SYN and SYN-ACK in the capture and who sent them (MAC, TTL), and escalate if they were injected.",
    "WG-CAP-026" => "Capture again with a snap length that holds whole frames (`tcpdump -s 0`, dumpcap's default): what the host read in the cut frame is unknown. Check the named connection's messages on the receiving system; a retransmission with other bytes for the same stretch is a decoy to look into.",
    "WG-CAP-028" => "Put the capture in time order and analyse it again (`reordercap in.pcapng out.pcapng`, or `mergecap -w out.pcapng` of one file per interface); meanwhile, read the capture's other alerts on connections seen on several interfaces with care.",
    "WG-CAP-027" => "Capture on an Ethernet interface or with `-i any` (Linux cooked), not through NFLOG or a link type wardgate does not decode; for frames with three or more VLAN tags (RSPAN of QinQ traffic), capture where at most two remain. Until then the named traffic was not checked: check its messages on the receiving system.",
    "WG-CAP-021" => "A message after a hole in the capture could not be proven to be a message (it may be text inside the lost one). Check the named control id against the receiving system's log; fix the capture loss (see the hole's event) so that messages are judged.",
    "WG-AUDIT-004" => "Someone accepted a gap in the audit log at start: find out what happened to the missing records (`event.reason` says what was expected and found), keep the old files and archive as evidence, and verify both chains with `wardgate audit verify --pubkey KEY`. Treat an unexplained gap as tampering and escalate.",
    "WG-AUDIT-005" => "Files that name patients are readable by more than wardgate: restore directories to 0750, files to 0640 and keys to 0600 (`event.reason` names each path and mode), and find out what widened them (a backup restore, a manual copy, a deployment script).",
    "WG-CONSOLE-001" => "Find out who tried: the record names the account and the address. If it was the account's owner, wait for the lock-out to end or have an admin set a new password (`wardgate user passwd`); if not, treat the address as hostile (block it, look for other attempts in the events), and consider disabling the account until its owner confirms.",
    "WG-MQTT-001" => "Find which device used the client id (source address, certificate): a device configured with another's id, or one posing as it. Fix the device's configuration, or add the id to its `client_ids` if it is legitimately its own; never share one client id between devices.",
    "WG-MQTT-002" => "The device sent its broker password in clear: consider it exposed and have it changed. Move the device to TLS (`[route.listen_tls]`, certificates from `wardgate ca`), or, if the link is on a network the site controls and the vendor cannot do TLS, accept the risk in writing and set `allow_cleartext_credentials`.",
    "WG-MQTT-003" => "Compare the topic with the device's `mqtt_profile` publish patterns. A new firmware topic confirmed with the vendor goes into the profile, then `wardgate reload`; a device writing to another patient's or device's topic is compromised or misconfigured: isolate it and escalate.",
    "WG-MQTT-004" => "A device asked for topics beyond its profile, often a wildcard (#, +, $SYS/#) that would receive every patient's data. Unless its vendor documents the subscription (then extend the profile precisely), treat the device as compromised: isolate it and escalate to the SOC.",
    "WG-MQTT-005" => "Retained messages are replayed to every new subscriber. If the device legitimately retains its status, add that topic to the profile's `retain`; otherwise find out why it tried (misconfiguration, or planting false readings).",
    "WG-MQTT-006" => "Check the device's will topic against the profile's `will`; add it if the vendor documents it, else fix the device's configuration.",
    "WG-MQTT-007" => "Check the QoS the device is configured with against the profile's `max_qos`; raise the limit only if the vendor requires it.",
    "WG-MQTT-008" => "Compare the payload size with what the device normally sends (`wardgate events --device`). Raise `max_payload_bytes` for a documented larger message; an unexpected large payload may be exfiltration or a broker flood.",
    "WG-MQTT-009" => "Someone other than the clinic's command server tried to send a device a command: treat it as an attempt to reprogram a device or drain its battery. Identify the sender (device, address, certificate), isolate it, tell clinical engineering which device was targeted, and escalate to the SOC.",
    "WG-MQTT-010" => "The command was not signed by a key enrolled for its sender. If the clinic's server was recently re-keyed, update `[[command_signer]]` and reload; otherwise the command was forged or altered on the way: keep the record, check the commander's host, and escalate.",
    "WG-MQTT-011" => "A command was sent again with the same nonce: a capture being replayed. Find where it came from (address, device) and escalate; the target device did not receive it.",
    "WG-MQTT-012" => "Check the clocks: the commander's and the gateway's must agree within `command_max_age_secs` (NTP). With clocks right, a delayed command is a replay attempt: escalate.",
    "WG-MQTT-013" => "A device was sent more commands than its budget allows. Ask clinical engineering whether that many were intended (then raise `commands_per_hour`/`commands_per_day`); otherwise check the commander for a fault or compromise. The patient's device battery is at stake: tell the clinic.",
    "WG-MQTT-014" => "Look at the reading in the event and the device's recent ones. A firmware change in format goes to the vendor and the profile's telemetry check; a garbled reading points to a faulty or tampered device: tell clinical engineering.",
    "WG-MQTT-015" => "An implausible reading reached the clinical system: tell clinical engineering and the clinic so nobody acts on it unchecked; check the device (sensor, unit configuration). If the range is wrong for this patient population, adjust the profile's telemetry limits.",
    "WG-MQTT-016" => "A peer broke the MQTT protocol's order. Repeated from one device, report its software to the vendor through clinical engineering; from an unexpected host, treat it as probing.",
    "WG-MQTT-017" => "Commands are being refused because too many signed commands arrived within the window: find the commander sending them (events with WG-MQTT-*) and stop it; the cache empties as the window passes.",
    "WG-RISK-001" => "Read the advisory's remediation (`wardgate risk --device ID`) and ask the manufacturer, through clinical engineering, for the fixed version or a VEX statement (import it with `wardgate advisories import`). Meanwhile keep the device behind an enforcing route with mutual TLS.",
    "WG-RISK-002" => "Read the advisory's own text in the event and the device's real version (its label, service menu, or the wire evidence in `wardgate devices`); declare `version` on the device, or ask the manufacturer for a VEX statement. Until then treat it as affected.",
    "WG-RISK-003" => "`wardgate risk --device ID` shows each factor and its evidence: act on the largest (an affecting advisory: patch or VEX; credentials in clear or default: change them and wrap the link in TLS; reachable from outside: close the path with the network team). The score falls as the evidence goes.",
    "WG-RISK-004" => "Check the device with clinical engineering: correct its declared `version` if the inventory was wrong; if the device was changed without a record, find out who changed it and why, then re-run `wardgate risk` so advisories are matched against what it really runs.",
    "WG-RISK-005" => "No action: the device's risk is back under the threshold. `wardgate risk --device ID` shows what changed.",
    "WG-MUD-001" => "Ask the manufacturer (through clinical engineering) whether the flow in `wardgate.risk.flow` is part of the device's intended use; if it is, they should update the MUD file. If not, treat the device as misconfigured or compromised: block the flow and examine it.",
    "WG-PRIV-001" => "Nothing to fix: the patient's choice was honoured. If the patient withdrew the opt-out, `wardgate consent remove --purpose PURPOSE ID`; the sender's next message is forwarded.",
    "WG-PRIV-002" => "Read the event's reason for the field or attribute that could not be transformed. Fix the sender, or add a field or attribute rule to [route.privacy] saying what to do with it, then `wardgate reload`.",
    "WG-PRIV-003" => "Send the object to a route that does not de-identify, or have the pixels cleaned before sending. Set [route.privacy] allow_burned_in = true only if the destination may see identity in the pixels.",
    "WG-MUD-002" => "Map the DNS name or controller the MUD file names to its addresses in `[risk] mud_names` or `mud_controllers` (ask the network team), then `wardgate reload`; the flow will then be judged.",
    "WG-EXPORT-001" => "The SOC is not receiving wardgate's alerts: check the collector named in `event.reason` (service running, port, TLS certificates, firewall) with its owners. Nothing is lost: the backlog is sent from the audit log when it returns; meanwhile read alerts with `wardgate events --follow`.",
    "WG-EXPORT-002" => "No action: the collector is back and the backlog named in `event.reason` was sent. If outages recur, find their cause with the collector's owners.",
    "WG-EXPORT-003" => "No action: a signed audit checkpoint, sent off the gateway so that deleting its data directory can be noticed from outside. A SIEM rule that alerts when these stop arriving catches a gateway that was stopped or wiped.",
    "WG-ALERT-001" => "Read the first alert of the episode (`wardgate events --rule` with the rule in `wardgate.repeat.rule`) and act on it as its rule says; the count says how persistent the cause is. If the repeats are expected, a `[[rule_override]]` for that rule and device records them quietly.",
    "WG-TLS-004" => "Ask clinical engineering whether the device was moved or readdressed: if so, update its `[[device]] addresses` and run `wardgate reload`. If not, treat its key as stolen: `wardgate device revoke ID`, enrol the device again, and find the machine at that address with the network team.",
    "WG-TLS-003" => "`event.reason` names the certificate and its date. A device's: issue a new one with `wardgate device enroll` for clinical engineering to install; a listener's: replace the `[route.listen_tls]` `cert` and `key` files (re-read on change). The built-in CA has no renew command: plan its replacement and re-enrolment early.",

    // Network hygiene (passive analysis).
    "WG-NET-001" => "Treat the account as exposed: have its owner (clinical engineering for a device, the vendor for a service account) change the password. Then move the service to an encrypted protocol or turn it off; if neither is possible, ask the network team to restrict who can reach that port.",
    "WG-NET-002" => "Anyone who has read the manual can log in. With clinical engineering and the vendor, change the credential now or disable the maintenance account. Look in the capture and `wardgate events` for other logins to that device, and ask the network team to restrict access to the service until it is changed.",
    "WG-NET-003" => "Ask clinical engineering and the vendor to disable SMBv1 on the device or server (a vendor-approved patch or setting). Until it is gone, ask the network team to limit SMB (TCP 445) to and from it to the hosts that need it, and check the host for signs of compromise.",
    "WG-NET-004" => "Find who owns the outside address in `event.reason`. A legitimate partner (teleradiology, a vendor cloud): carry the traffic over TLS (`[route.upstream_tls]`) or a VPN with the network team; an address that is really on site: add its network to `[gateway] local_networks`. Anything else is a possible leak: escalate to the SOC.",
    "WG-NET-005" => "If the conversation is expected, add `\"PEER:PROTOCOL\"` to the device's `peers` (or cover it with a route) and re-run the analysis. If not, ask clinical engineering why the device talks to that peer and check the device. An unknown address speaking a clinical protocol must be identified (`wardgate devices`, the network team).",
    "WG-NET-006" => "The device is set up with the upstream's address instead of wardgate's: have clinical engineering point it at the route's `listen` address. Ask the network team for a firewall rule so the upstream accepts connections only from `[gateway] addresses`. Until both are done, this device's traffic is not checked inline.",

    // Passive analysis: the capture's own limits.
    "WG-CAP-001" => "Passive coverage was partial. If the site really has this many connections, raise `[gateway.capture] max_flows` or narrow `--filter`. If the count jumped, look in the capture for a scan or connection flood (many connections from one source) and identify that host with the network team.",
    "WG-CAP-002" => "Usually loss at the tap: check the SPAN port or tap for drops (an oversubscribed mirror) with the network team, and look for WG-CAP-017. If `event.reason` names the reassembly limit, raise `[gateway.capture] max_reassembly_bytes`. The stream was not clinical, so this is not urgent.",
    "WG-CAP-003" => "The capture file was cut short (still being written, an incomplete copy, a full disk). Copy the complete file and run `wardgate analyze` on it again; nothing after the cut was checked.",
    "WG-CAP-004" => "Raise `[gateway.capture] max_buffered_bytes` if the analysis host has memory to spare. If it bites on ordinary traffic, look at the connection named in `event.reason`: holding many out-of-order bytes on purpose is a way to push a monitor off a stream, so check its source host.",

    // Passive analysis: evasion and what the host read.
    "WG-CAP-005" => "Possible evasion: someone may show the monitor one message and the device another. Find who sent the differing copies (MAC, TTL) in the capture, compare the message named in `event.reason` with what the receiving system logged, and escalate to the SOC. A receiver not running Linux needs a `[[gateway.capture.host_policy]]`.",
    "WG-CAP-006" => "First check for capture loss at that time (WG-CAP-017, drops at the SPAN port or tap). Then verify the message named in `event.reason` on the receiving system (interface log, pump programme, PACS), since wardgate could not judge it. With no capture loss, treat the hole as possible evasion and escalate to the SOC.",
    "WG-CAP-007" => "`event.reason` says why (flow table, memory budget, idle timeout): raise `[gateway.capture] max_flows`, `max_buffered_bytes` or `flow_timeout_secs` to match. Verify the unjudged message on the receiving system, and if unusual traffic filled the limit, look for a flood in the capture.",
    "WG-CAP-008" => "wardgate gave up waiting for a missing segment, so the message was not judged: verify it on the receiving system. On a merely lossy path, raise `[gateway.capture] max_reassembly_bytes`. A sender holding many segments back out of order is an evasion pattern: check that host.",
    "WG-CAP-009" => "`event.reason` says why the host would drop the packet. Find its sender in the capture (MAC address, TTL against the connection's other packets): a decoy injected on the path points to a compromised host or switch port, to trace with the network team. One device repeating it may instead have a faulty NIC or middlebox.",
    "WG-CAP-010" => "Look at the RST, SYN or FIN in the capture and who sent it (MAC, TTL). An injected reset or decoy means an attacker on the path: trace the source with the network team and escalate. A stray SYN after a device reboot, or a late packet after a NAT timeout, is the benign case.",
    "WG-CAP-011" => "Compare the TTLs in the capture: a route change alters every later packet, a decoy only some. If only some packets differ, find their sender with the network team and verify the connection's messages on the receiving system.",
    "WG-CAP-012" => "Find the station that sent the frame (its source MAC) and, with the network team, look for ARP spoofing or a mirror port mixing segments. The receiving card drops such frames, which makes them a known decoy: a station that keeps sending them needs checking.",
    "WG-CAP-013" => "Overlapping fragments have no legitimate use: identify the source in the capture and escalate to the SOC with the capture. If the destination's stack is not Linux, check what it received. The network team can drop fragments toward clinical hosts at the firewall.",
    "WG-CAP-014" => "Identify the source in the capture: tiny or malformed fragments are an evasion or denial-of-service technique, so escalate if that host has no reason to send them. Ask the network team whether fragments toward clinical hosts can be dropped at the firewall.",
    "WG-CAP-015" => "Usually loss at the tap or on the path: check for WG-CAP-017 and tap drops. Many incomplete datagrams from one source are a fragment flood: identify it with the network team. The contents of those datagrams were not checked.",
    "WG-CAP-016" => "HL7 and DICOM never use TCP urgent data: find the sender in the capture and check it. Ask the receiving system's vendor whether it reads urgent data inline (SO_OOBINLINE), verify the message named in `event.reason` on that system, and escalate to the SOC if the sender is unexpected.",
    "WG-CAP-017" => "Coverage had a gap. Run the capture with a larger `--buffer-mib` or a narrower `--filter`, and check the capture host's CPU load. A sudden burst may be a flood sent to blind the monitor: find its source in the capture and in the gateway's WG-FLOOD events.",
    "WG-CAP-018" => "If capture drops (WG-CAP-017) or tap loss happened at the same time, this is most likely loss: enlarge `--buffer-mib`. Otherwise it may be a decoy: find its sender in the capture and verify the message named in `event.reason` on the receiving system.",

    // Access.
    "WG-ACCESS-001" => "Identify the address (`wardgate devices`, DHCP and switch tables with the network team). Legitimate equipment: add a `[[device]]` with its `addresses`, add it to the route's `senders`, and run `wardgate reload`; a known device whose address changed: update `addresses` and ask for a reservation. Otherwise find and remove it.",
    "WG-ACCESS-002" => "If the device should use this route, add its id to the route's `senders` and run `wardgate reload`. If not, ask clinical engineering why it sends there (a destination changed during service, or misuse). Right after a reload that removed it from `senders`, this is expected.",
    "WG-ACCESS-003" => "The whole gateway is at `[gateway] max_connections`. Read the WG-FLOOD-004 summaries to see which devices hold the connections and deal with them first. If the load is legitimate growth, raise `max_connections` and restart wardgate; a reload does not change it.",

    // HL7 policy.
    "WG-HL7-001" => "`event.reason` gives MSH-9. If the sender needs this message type, add `TYPE^TRIGGER` to the route's `messages` and run `wardgate reload`; if not, ask the interface team why it sends it. The sender got AR: the message sits in its error queue, undelivered.",

    // Infusion orders (patient safety).
    "WG-INF-001" => "Every infusion order on this route is blocked. Set the route's `drug_library` to the pharmacy's library, run `wardgate check` and then `wardgate reload`. Until then tell the ward that orders are not reaching the pumps, and confirm with them that each refused order was re-entered correctly.",
    "WG-INF-002" => "The EHR sent an infusion order without an RXG segment: ask the EHR interface team to fix the message. Confirm with the ward that the order was re-entered correctly; nothing reached the pump.",
    "WG-INF-003" => "`event.reason` names the give code. If it is a formulary drug, pharmacy adds the code to the drug's `names`, signs the library (`wardgate library sign`), and you run `wardgate reload`. Confirm with the ward that the order was re-entered correctly; never let the pump run it without limits.",
    "WG-INF-004" => "`event.reason` and ERR-2 of the AR name the field. Ask the EHR interface team to send a UCUM unit or an MDC code there. Confirm with the ward that the order was re-entered correctly.",
    "WG-INF-005" => "The ordered unit cannot be compared with the library's (mass against units, a rate against a dose): often the wrong unit picked at order entry. Confirm with the ward what was intended and that the order was re-entered correctly; if the order was right, pharmacy checks the drug's `rate_unit` or `dose_unit`.",
    "WG-INF-006" => "The order is per kg but carries no plausible weight. Ask the ward to record the patient's weight in the EHR and re-enter the order, and confirm it went through. If weights are recorded but not sent, the EHR interface team must add the weight OBX (68063^MDC_ATTR_PT_WEIGHT).",
    "WG-INF-007" => "A volume cannot become drug units without the concentration. Ask the EHR interface team to send RXG-17/18 and RXG-23/24 (or an MDC_CONC_DRUG OBX), and confirm with the ward that the order was re-entered correctly.",
    "WG-INF-008" => "ERR-2 of the AR names the field with the invalid number. Ask the EHR interface team why it was not a plain non-negative number (a format or locale setting such as a decimal comma), and confirm with the ward that the order was re-entered correctly.",
    "WG-INF-009" => "`event.reason` says what was missing: a rate or amount the library has limits for, or an order type wardgate can check. Ask pharmacy whether the drug needs the other kind of limit (rate or dose) in the library, and confirm with the ward that the order was re-entered correctly.",
    "WG-INF-010" => "Call the ward now: confirm the rate was a mistake, that the order was re-entered correctly, and that nobody programmed the pump by hand with the blocked rate. If `event.action` is `would-block` or `observed-violation`, the order reached the pump: check it at once. Change `rate_hard_max` only with pharmacy.",
    "WG-INF-011" => "Call the ward now: confirm the dose was a mistake, that the order was re-entered correctly, and that nobody programmed the pump by hand with the blocked dose. If `event.action` is `would-block` or `observed-violation`, the order reached the pump: check it at once. Change `dose_hard_max` only with pharmacy.",
    "WG-INF-012" => "Forwarded: the pump received it. Confirm with the ward that the clinician meant this rate (an override is legitimate) and that the patient is being watched. If the same drug alerts often, ask pharmacy to review its `rate_soft_max`.",
    "WG-INF-013" => "Forwarded: the pump received it. Confirm with the ward that the clinician meant this dose (an override is legitimate) and that the patient is being watched. If the same drug alerts often, ask pharmacy to review its `dose_soft_max`.",
    "WG-INF-014" => "The unit's size depends on its letter case (MU, MIU, ML, MG). Ask the EHR interface team to send UCUM as written (mU, [iU], mL, mg) or an MDC code, and confirm with the ward that the order was re-entered correctly.",
    "WG-INF-015" => "ERR-2 of the AR names the field that repeats. Ask the EHR interface team to send one value there (a second drug or step is a second RXG), and confirm with the ward that the order was re-entered correctly.",
    "WG-INF-016" => "Parts of one code name different things (`event.reason` says which). Ask the ward which drug or unit was meant and confirm the order was re-entered correctly. If the identifier is just missing from the library, pharmacy adds it to the drug's `names`; otherwise the EHR interface team fixes the mapping.",
    "WG-INF-017" => "The order states one quantity twice with different values (`event.reason` names both). Confirm with the ward which value was meant and that the order was re-entered correctly, and ask the EHR interface team to make the places agree or state the quantity once.",
    "WG-INF-018" => "Ask the EHR interface team to put each give's TQ1 right after its RXG (PCD-03), or to send one give per message. Confirm with the ward that the order was re-entered correctly.",
    "WG-INF-019" => "Numbers, units and drug codes must travel as plain characters. Ask the EHR interface team why escape sequences appear there; if they cannot explain it, treat the message as suspect and escalate to the SOC. Confirm with the ward that the order was re-entered correctly.",
    "WG-INF-020" => "The weight or body surface area is malformed (`event.reason` says how: a wrong unit, an implausible value). Ask the ward to correct it in the EHR and re-enter the order, and confirm it went through. Repeated unit errors from one system go to the EHR interface team.",
    "WG-INF-021" => "Two weights (or body surface areas) disagree. Ask the ward which one is current, to mark the wrong result as wrong in the EHR, and to re-enter the order; confirm it went through.",
    "WG-INF-022" => "Forwarded. Ask the ward to correct the patient's weight or body surface area in the EHR before a weight-based order needs it, since that order would be blocked. Not urgent unless such an order is due.",
    "WG-INF-023" => "Call the ward to confirm the order was re-entered correctly; a unit slip (mcg for mg) is a common cause of a rate this low. If `event.action` is `would-block` or `observed-violation`, the order reached the pump: check it now. Change `rate_hard_min` only with pharmacy.",
    "WG-INF-024" => "Call the ward to confirm the order was re-entered correctly; a unit slip (mcg for mg) is a common cause of a dose this low. If `event.action` is `would-block` or `observed-violation`, the order reached the pump: check it now. Change `dose_hard_min` only with pharmacy.",
    "WG-INF-025" => "Forwarded: the pump received it. Confirm with the ward that the low rate was meant (a unit slip is a common cause). If it is a standard regimen, ask pharmacy to review the drug's `rate_soft_min`.",
    "WG-INF-026" => "Forwarded: the pump received it. Confirm with the ward that the low dose was meant (a unit slip is a common cause). If it is a standard regimen, ask pharmacy to review the drug's `dose_soft_min`.",
    "WG-INF-027" => "Ask pharmacy and the ward to check the bag and the order against `concentration_min`/`concentration_max`, and confirm the order was re-entered correctly. If `event.action` is `would-block` or `observed-violation`, the order reached the pump: check the pump and the bag now.",
    "WG-INF-028" => "Forwarded. Pharmacy should check how the bag was prepared. If it is a new standard strength, pharmacy adds it to the drug's `concentrations`, signs the library (`wardgate library sign`), and you run `wardgate reload`.",
    "WG-INF-029" => "The volume to be infused is above `vtbi_max_ml` for the care area. Confirm with the ward the intended volume and that the order was re-entered correctly; if `event.action` is `would-block` or `observed-violation`, check the pump now. Limit changes go through pharmacy.",
    "WG-INF-030" => "The infusion runs longer than `duration_max_min` for the care area. Confirm with the ward the intended duration and that the order was re-entered correctly; if `event.action` is `would-block` or `observed-violation`, check the pump now. Limit changes go through pharmacy.",
    "WG-INF-031" => "A weight outside the care area's range suggests the wrong patient, care area or weight unit. Confirm with the ward the patient, the weight and the pump's care area, and that the order was re-entered correctly. If the care area was chosen wrongly, check the route's `care_area` and the library's `points_of_care`.",
    "WG-INF-032" => "The order's point of care (PV1-3) maps to no care area. Pharmacy adds it to a care area's `points_of_care` (or sets `default_care_area`, or the route's `care_area`), then run `wardgate reload`. Confirm with the ward that the order was re-entered correctly.",
    "WG-INF-033" => "The drug is not allowed in this care area (`available = false`). Confirm with the ward the patient's location (PV1-3) and the drug; a patient registered on the wrong unit is a common cause. Pharmacy decides whether the library should allow it; confirm the order was re-entered correctly.",
    "WG-INF-034" => "PV1 appears twice, so the care area is uncertain. Ask the EHR interface team to send one PV1, and confirm with the ward that the order was re-entered correctly.",
    "WG-INF-035" => "TQ1-7 and TQ1-8 do not name one duration (different offsets, local times across a clock change), so the rate has two readings. Ask the EHR team to send both times with one explicit offset, or name the pump server's zone as the route's `time_zone`. Confirm the order was re-entered correctly.",
    "WG-INF-036" => "A pump programming OBX sits outside any give. Ask the EHR interface team to place each OBX right after the RXG it programs (PCD-03), and confirm with the ward that the order was re-entered correctly.",
    "WG-INF-037" => "No real order has more than 64 gives: ask the EHR interface team what produced it, and escalate to the SOC if they cannot explain it. Confirm with the ward that the intended order was re-entered correctly.",
    "WG-INF-038" => "A bolus with a rate but no duration or dose could run as an infusion. Ask the EHR interface team to send the bolus dose or duration, and confirm with the ward that the order was re-entered correctly.",
    "WG-INF-039" => "Whether the order is a bolus or an infusion could not be read one way. Ask the EHR interface team to send ORC-1 as one upper-case code (CH for a bolus from a running infusion, NW, RE...) and the order type as a code, not text only; confirm with the ward that the order was re-entered correctly.",
    "WG-INF-040" => "Ask the EHR interface team to send infusion orders to the pump as PCD-03 (RGV^O15 with RXG, TQ1, RXR, OBX) without RXO, RXE, RXC, RXD or RXA segments; the pharmacy order goes to the pharmacy system. Confirm with the ward that the order was re-entered correctly.",
    "WG-INF-041" => "Ask the EHR interface team to state the infusion's timing in TQ1 (TQ1-6, TQ1-7/8, TQ1-13) rather than in ORC-7, RXG-3 or RXE-1, and confirm with the ward that the order was re-entered correctly.",
    "WG-INF-042" => "Ask the EHR interface team to send each give of a repeated order as its own order (one give, TQ1-2 quantity 1, no repeat pattern), or to state the infusion as a rate and duration; confirm with the ward that the order was re-entered correctly.",
    "WG-INF-043" => "The order carries a programming quantity (a duration, volume, amount or rate) under an identifier wardgate does not check. Ask the EHR team which parameter it is: if it is one the pump server programs from, state it with a code wardgate reads (IHE PCD-03's MDC codes) or move it out of the order; then resend.",
    "WG-INF-044" => "The order names a route the library does not allow for this drug in this care area: confirm the intended route with the prescriber and the ward before anything is given; if `event.action` is `would-block` or `observed-violation`, check the pump and the line now. If the route is right, pharmacy decides whether to add it to `routes`.",
    "WG-INF-045" => "The route of administration could not be read one way (`event.reason` says why). Ask the EHR interface team to send one RXR per give with RXR-1 as one HL7 table 0162 code in its identifier (`IV^Intravenous^HL70162`), and confirm with the ward that the order was re-entered correctly.",
    "WG-INF-046" => "The PCA order's lockout interval is shorter than the library allows for this drug in this care area. Ask the prescriber and pharmacy to confirm the lockout; correct the order in the EHR and resend. If the library's minimum is wrong, the pharmacy changes pca_lockout_min_minutes in the signed library.",
    "WG-INF-047" => "The order's gives do not read as one multistep programme (steps numbered 1 to n, one drug and concentration, a loading dose only first, a total that matches). Ask the EHR interface team to send each drug or concentration as its own order, number the steps of one programme 1 to n, and state the total as the number of steps sent; then resend.",
    "WG-INF-049" => "The order was sent in pieces (an ADD segment continuing another, or a message continued with DSC/MSH-14), which wardgate does not join. Ask the EHR interface team to send each infusion order whole, in one message without ADD segments; resend it.",
    "WG-INF-048" => "The PCA programme can deliver more in an hour than the library allows for this drug (basal, loading and demand doses as the lockout allows). Ask the prescriber and pharmacy to review the basal rate, demand dose and lockout, or state the PCA dose limit over a period; correct the order in the EHR and resend.",

    // DICOM policy.
    "WG-DICOM-001" => "The calling AE title is not among the sender's `ae_titles`. If clinical engineering or the vendor changed it (after a service visit), add it to the device's `ae_titles` and run `wardgate reload`; if nobody changed it, treat it as spoofing and find which host sent it.",
    "WG-DICOM-002" => "The sender called an AE title missing from the route's `called_ae_titles`. Ask clinical engineering whether its destination was changed; add the title and run `wardgate reload` only if it is the route's upstream. Repeated guessing of AE titles is reconnaissance: escalate.",
    "WG-DICOM-003" => "Often harmless: modalities propose many SOP classes and store with those accepted. If images of that class are missing at the PACS, add its UID to the route's `sop_classes` and run `wardgate reload`. An unexpected class from a device (query or print from a scanner) is worth a question to clinical engineering.",
    "WG-DICOM-004" => "`event.reason` names the operation. Ask clinical engineering whether the device needs it; if so, add it to the route's `operations` and run `wardgate reload`. A store-only device retrieving or changing studies is suspicious: check it and escalate.",
    "WG-DICOM-005" => "Someone asked to send studies to an AE title not in `move_destinations`. Find the destination and who asked (calling AE, device). A confirmed new workstation goes into `move_destinations`, then `wardgate reload`; anything else is possible exfiltration: escalate to the SOC.",
    "WG-DICOM-006" => "The passcode or token is exposed: have the PACS administrator change it. With clinical engineering and the vendor, move the route to TLS (`[route.listen_tls]`, `[route.upstream_tls]`) so identities stop crossing the network in clear.",
    "WG-DICOM-007" => "The sender used a presentation context that was never accepted. Repeated from one modality, it is a software defect to report to the vendor through clinical engineering. From an unexpected host, or after WG-DICOM-003 rejections, treat it as an attempt to bypass the SOP class check and escalate.",
    "WG-DICOM-008" => "Usually a faulty DICOM implementation: note the sender's software (`wardgate devices`) and report it to the vendor through clinical engineering. From a host that does not normally speak DICOM, treat it as probing and escalate.",
    "WG-DICOM-009" => "Possible malware in a DICOM object: with the SOC and clinical engineering, isolate and check the sending modality or workstation. With `executable_content = \"alert\"` the object reached the PACS: find it by sender and time and quarantine it. Check exported files with `wardgate scan`.",
    "WG-DICOM-010" => "The object went through without the executable check. If the sender or time is unexpected, export the object from the PACS and check it with `wardgate scan`. A modality that always sends deflated or big-endian data can be asked, through clinical engineering, to use explicit VR little endian.",

    // Upstreams.
    "WG-UP-001" => "`event.reason` says what failed. Check that the upstream (pump server, EHR interface, PACS) is running and reachable from the gateway, with its owners and the network team; a TLS failure means checking `[route.upstream_tls]` `server_name` and `ca`. Senders retry; on store-and-forward routes see `wardgate queue`.",
    "WG-UP-002" => "The upstream answered with bytes that are not valid MLLP or DICOM. Check that the route's `upstream` is the right service and port, and ask the upstream's owner or vendor to check their logs; a recent upgrade on their side is a common cause.",
    "WG-UP-003" => "The upstream refused the association; its reason was relayed to the sender. Usually it does not know the calling AE title or the SOP classes: ask the PACS administrator to configure them. If it answered busy, check its load.",
    "WG-UP-004" => "The upstream broke off mid-conversation. Ask its administrator to check their logs at the event's time; if it repeats, check the network path with the network team. Confirm with the modality operator that the study was sent again and arrived complete.",
    "WG-UP-005" => "The upstream answered the same message twice. Nothing is lost (the first answer was relayed); ask the upstream's administrator why (a retransmission on its side, an interface engine replaying answers) and check the second answer's code in the event.",
    "WG-UP-008" => "The pump server's answer said both accepted and rejected (two MSA segments that disagree); the sender was told the answer was ambiguous. Check on the pump server whether the order was taken before resending it, and have the upstream's administrator fix its answers: HL7 gives one MSA per acknowledgement.",
    "WG-UP-009" => "The pump server answered messages out of order and left an earlier one unanswered: check on the pump server which of the named messages it accepted before any is sent again, and have its administrator look at why it lost or delayed the earlier message.",
    "WG-UP-007" => "An answer naming no message sent here was not relayed. After a reconnect, with the real answers following, no action. If every answer shows this rule, the upstream does not echo MSH-10 in MSA-2 as HL7 requires: have its administrator fix it (until then senders get no answers and resend).",
    "WG-UP-006" => "The upstream sent an answer nobody was waiting for; it was not relayed, so the sender was not misled. Ask the upstream's administrator why (a delayed or replayed answer, an interface engine answering twice, a misconfigured connection) and check the frame's MSA-2 and code in the event.",

    // Connections.
    "WG-CONN-001" => "A frame took longer than `frame_timeout_secs`. For a device on a slow link, raise `[gateway] frame_timeout_secs` and restart wardgate. Repeated from a device that is normally quick, it is a fault or an attempt to hold connections: have clinical engineering check the device.",
    "WG-CONN-002" => "No action normally: the connection was silent for `idle_timeout_secs`. If a device needs long silent connections and reconnects often, raise `[gateway] idle_timeout_secs` and restart wardgate.",
    "WG-CONN-003" => "A message was cut when wardgate stopped. Check with the sender's interface team or the modality operator that it was sent again (HL7 senders retry when no acknowledgement came). If this happens at each planned restart, raise `[gateway] shutdown_grace_secs`.",
    "WG-CONN-004" => "The sender pipelined many refused messages: find out why they were refused from this connection's other events. The messages named in `event.reason` as never answered got wardgate's AE: whether the pump server took them is unknown, so ask its interface team to check each on the pump before sending it again.",
    "WG-CONN-005" => "Low urgency. If a modality aborts often, ask clinical engineering or the vendor to check it, and confirm with its operator that the study arrived complete at the PACS.",
    "WG-CONN-006" => "The sender never read the answers named in `event.reason`. Ask its interface team to check their outbound queue: those messages may be resent (store-and-forward routes catch duplicates) or stuck. A sender that does this repeatedly has a defect to report to its vendor.",

    // Store-and-forward queues.
    "WG-QUEUE-001" => "The upstream has been down or slow for long: fix that first (WG-UP-001; `wardgate queue` shows depth and age). Senders keep their messages and retry, so nothing is lost. Raise `[route.queue] max_bytes` only if the disk has room, and restart wardgate to apply it.",
    "WG-QUEUE-002" => "No action for an occasional duplicate. Many from one sender suggest its acknowledgement timeout is too short or acknowledgements are being lost: ask its interface team to check.",
    "WG-QUEUE-003" => "The message waits for an operator. `wardgate queue --config FILE --route R` shows the upstream's reason; fix the cause with the upstream's owner or the interface team, then `wardgate queue --config FILE --route R --redrive ID`. If it was an order, tell the ward it has not arrived.",
    "WG-QUEUE-004" => "Check the disk under data_dir for errors (kernel log) with the system administrators, and compare `wardgate queue` with what the senders sent. A corrupt record that was not the journal's last one points to a failing disk.",
    "WG-QUEUE-005" => "No action while deliveries succeed. If retries go on, check the upstream (WG-UP-001) and `wardgate queue` for the depth and the oldest message.",
    "WG-QUEUE-006" => "wardgate's own disk failed: with the system administrators, check free space and errors on the filesystem under data_dir. Once fixed, restart wardgate; the queue stays stopped until then, and senders get AE and keep their messages.",
    "WG-QUEUE-007" => "The sender reused a control id (MSH-10) for a different message. Nothing was delivered for the second message: ask the sender's interface team to resend it with a new MSH-10, and find why its counter repeated (a restart, two applications sharing one id space).",
    "WG-QUEUE-008" => "The receiving system refused a message after its answer window had passed, so wardgate had recorded it as delivered. Read the answer's codes in the event, fix the cause with the receiver's team, and have the sender resend the message (or raise the route's `ack_timeout_ms` above the receiver's answer time).",

    // Flood protection.
    "WG-FLOOD-001" => "Ask clinical engineering whether the device is malfunctioning, misconfigured or compromised. If its normal traffic needs more connections at once, raise `max_connections_per_device` in its `[device.limits]` and restart wardgate; a reload does not change flood limits.",
    "WG-FLOOD-002" => "Often a device in a reconnect loop after an error: look at its other events and ask clinical engineering to check it. If its normal traffic needs it, raise `new_connections_per_sec` or `new_connections_burst` in its `[device.limits]` and restart wardgate; a reload does not change flood limits.",
    "WG-FLOOD-003" => "Messages are held back, not dropped. An interface engine replaying a backlog after downtime is the usual benign cause; otherwise ask clinical engineering to check the device. For a known higher rate, raise `messages_per_sec` in its `[device.limits]` and restart wardgate.",
    "WG-FLOOD-004" => "Read `wardgate.flood` in the event: the limits hit, what was refused and throttled, and for how long. A short episode from a known busy sender needs no action; repeated or large ones need the device checked by clinical engineering, or its `[device.limits]` adjusted and wardgate restarted.",

    // wardgate's own records.
    "WG-AUDIT-001" => "Find out why wardgate stopped (power loss, crash, out-of-memory kill) in the system journal. Run `wardgate audit verify --config FILE --pubkey KEY` to confirm the log is intact; decisions from just before the stop may be missing from it.",
    "WG-AUDIT-002" => "Run `wardgate audit verify --config FILE --pubkey KEY` with the public key kept off the machine. Note the records cut (`event.reason`) in any incident record, and find out why wardgate crashed and whether the disk is healthy.",
    "WG-AUDIT-003" => "The disk under data_dir is too slow: traffic was delayed, not lost. With the system administrators, check its I/O load, free space and kernel log errors; if it persists, move data_dir to a faster or healthy disk.",

    // Protocol anomalies: MLLP.
    "WG-MLLP-001" => "Something other than HL7 over MLLP reached the route (TLS to a cleartext port, a health check, a scan). Identify the sender. If it is an enrolled system on a route with `mllp_strict = true`, it may add LF after the end block: set `mllp_strict = false` or ask its vendor.",
    "WG-MLLP-002" => "A frame exceeded `max_frame_bytes`. If the sender has a reason to send large messages (PDFs or images embedded in results), raise the route's `max_frame_bytes` and run `wardgate reload`; otherwise ask its interface team what it sent.",
    "WG-MLLP-003" => "The sender's framing is broken: ask its interface team or vendor to end each frame with 0x1C 0x0D, and check that the message was sent again.",
    "WG-MLLP-004" => "The sender disconnected mid-message, so that message was not delivered. Ask its interface team to check that it was sent again; if it repeats, check the network path and the sender's timeouts.",

    // Protocol anomalies: HL7.
    "WG-HL7-P01" => "An empty frame, often a homemade keep-alive. Ask the sender's interface team to stop sending empty frames; no clinical data was in it.",
    "WG-HL7-P02" => "The frame does not start with MSH: a corrupted message or not HL7 at all. Ask the sender's interface team to check its output and resend; escalate if the content is not HL7.",
    "WG-HL7-P03" => "MSH-1/MSH-2 declare unusable delimiters. Ask the sender's interface team to send the standard `|^~\\&` and resend the message.",
    "WG-HL7-P04" => "More segments than `[gateway] max_segments`. If the sender has a reason to send such long messages, raise `max_segments` and run `wardgate reload`; otherwise ask its interface team what produced it.",
    "WG-HL7-P05" => "A segment id that is not three upper-case letters or digits: a corrupted message or a malformed custom segment. Ask the sender's interface team to fix it and resend.",
    "WG-HL7-P06" => "MSH-9 (message type) is empty, so the message was refused. Ask the sender's interface team to fill it and resend.",
    "WG-HL7-P07" => "MSH-10 is empty, so acknowledgements cannot be matched and duplicates cannot be caught. Ask the sender's interface team to set a unique control id and resend.",
    "WG-HL7-P08" => "No clinical message is 4 GiB: this is a crafted or corrupted stream. Identify the sender in `event.reason` and the capture, and escalate to the SOC unless it is a known system's fault.",
    "WG-HL7-P09" => "A control character or Unicode line break lets parsers disagree about the message. Ask the sender's interface team to remove it or escape it (`\\X0C\\` in text fields); if they cannot explain it, treat the message as a possible evasion attempt and escalate.",
    "WG-HL7-P10" => "Two messages (or a batch header) in one frame. Ask the sender's interface team to send one message per MLLP frame; batches are not accepted. An embedded header nobody can explain is a smuggling technique: escalate.",
    "WG-HL7-P11" => "Segments end with different terminators. Ask the sender's interface team to end every segment with CR, as HL7 requires, and resend.",
    "WG-HL7-P12" => "The message declares a character set (MSH-18) in which the receiver could read different fields than wardgate checked. Ask the sender's interface team to send UTF-8 (`UNICODE UTF-8`) or an ISO 8859 set; if the sender never uses that character set, treat the message as a possible evasion attempt and escalate.",
    "WG-HL7-A01" => "No action needed: tolerated. At its next interface change, ask the sender's vendor to end segments with CR only.",
    "WG-HL7-A02" => "No action needed: tolerated. The sender's interface team can drop the blank lines at its next change.",

    // Protocol anomalies: DICOM.
    "WG-DICOM-P01" => "Not DICOM: TLS to a cleartext port, HTTP or a scan reached a DICOM route. Identify the sender; if it is an enrolled modality, ask clinical engineering to check its port and TLS settings, otherwise escalate.",
    "WG-DICOM-P02" => "A PDU exceeded `max_pdu_bytes` or the negotiated maximum. If a modality's maximum PDU is set higher, raise the route's `max_pdu_bytes` or have clinical engineering lower it on the modality; a peer ignoring the negotiated size has a defect for its vendor.",
    "WG-DICOM-P03" => "The peer's DICOM encoding is broken (`event.reason` names the element). Note its software (`wardgate devices`) and report it to the vendor through clinical engineering; from an unexpected host, treat it as probing and escalate.",
    "WG-DICOM-P04" => "More items than wardgate allows (at most 128 presentation contexts, the DICOM maximum): no real modality does this. Identify the sender and escalate; if it is a known device, report the defect to its vendor through clinical engineering.",
    "WG-MQTT-P01" => "The client or broker sent a packet MQTT forbids (`event.reason` names the field). From an enrolled device, note its firmware (`wardgate devices`) and report the defect to its vendor through clinical engineering; from anything else, treat it as probing or an evasion attempt and escalate to the SOC.",
    "WG-MQTT-P02" => "A packet exceeded the route's maximum MQTT packet size or limits. If the device legitimately sends large payloads (waveforms, firmware logs), raise the route's limit and run `wardgate reload`; otherwise identify the sender and escalate.",
    "WG-MQTT-P03" => "A topic or string with invalid UTF-8, a NUL or a control character: no real device needs one. Identify the sender; from an enrolled device report it to the vendor through clinical engineering, otherwise treat it as an evasion attempt and escalate.",
    "WG-MQTT-P04" => "A PUBLISH or will with an empty topic or a wildcard: a broken client or an attempt to publish to many topics. Check the device's firmware with clinical engineering; if it is not an enrolled device, escalate to the SOC.",
    "WG-MQTT-P05" => "A subscription filter brokers read differently (misplaced `#` or `+`, a bad `$share` name). Ask the application's owner to fix the filter; a device that should only publish has no reason to subscribe this way: escalate if unexplained.",
    "WG-MQTT-P06" => "An MQTT 5 property that breaks the specification (`event.reason` names it). Report the client's software to its vendor through clinical engineering; from an unknown host, treat it as smuggling and escalate.",
    "WG-MQTT-P07" => "A topic alias wardgate could not resolve to exactly one topic. A client library that reassigns aliases (for example mqtt.js `autoAssignTopicAlias`) trips this: turn that off on the device, or disable topic aliases; otherwise treat it as an attempt to hide a topic and escalate.",
    "WG-MQTT-P08" => "The client speaks MQTT 3.1 or an unknown version. Ask clinical engineering or the vendor to configure MQTT 3.1.1 or 5.0; if the device cannot, it has to be routed around the inline MQTT gateway by a documented exception.",
}

#[cfg(test)]
mod tests {
    use super::{remediation, KNOWN};
    use crate::rules;
    use std::collections::BTreeSet;

    #[test]
    fn every_rule_has_a_remediation() {
        for r in rules::all() {
            let text = remediation(r.id);
            assert!(
                text.is_some_and(|t| !t.trim().is_empty()),
                "{} ({}) has no remediation: add one to remediation.rs",
                r.id,
                r.name
            );
        }
    }

    #[test]
    fn no_remediation_outside_the_catalogue() {
        let catalogue: BTreeSet<&str> = rules::all().map(|r| r.id).collect();
        let known: BTreeSet<&str> = KNOWN.iter().copied().collect();
        assert_eq!(known.len(), KNOWN.len(), "an id is listed twice");
        let stale: Vec<_> = known.difference(&catalogue).collect();
        assert!(
            stale.is_empty(),
            "remediations for ids not in the catalogue: {stale:?}"
        );
        let missing: Vec<_> = catalogue.difference(&known).collect();
        assert!(
            missing.is_empty(),
            "rules without a remediation: {missing:?}"
        );
        for id in KNOWN {
            assert!(remediation(id).is_some(), "{id} listed but not answered");
        }
        for (id, _) in rules::RETIRED {
            assert_eq!(remediation(id), None, "retired {id} has a remediation");
        }
        assert_eq!(remediation("WG-NOPE-000"), None);
        assert_eq!(remediation(""), None);
    }

    /// Read at 3 a.m.: short, plain, one to three sentences, no shouting.
    #[test]
    fn remediations_are_short_and_plain() {
        let mut problems = Vec::new();
        for id in KNOWN {
            let t = remediation(id).unwrap_or_default();
            if t.len() > 350 {
                problems.push(format!("{id}: {} characters, at most 350", t.len()));
            }
            if t.contains('!') {
                problems.push(format!("{id}: an exclamation mark"));
            }
            if !t.ends_with('.') || t != t.trim() {
                problems.push(format!("{id}: must end with a full stop, no stray spaces"));
            }
            // Sentences: full stops followed by a space, outside `code`.
            let (mut in_code, mut sentences) = (false, 1);
            let b = t.as_bytes();
            for (i, &c) in b.iter().enumerate() {
                match c {
                    b'`' => in_code = !in_code,
                    b'.' if !in_code && b.get(i + 1) == Some(&b' ') => sentences += 1,
                    _ => {}
                }
            }
            if sentences > 3 {
                problems.push(format!("{id}: {sentences} sentences, at most 3"));
            }
            if in_code {
                problems.push(format!("{id}: unbalanced backquote"));
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
