//! HL7 v2 minimisation and pseudonymisation, sans-IO: one message in, the
//! message a destination may receive out.
//!
//! The input is one HL7 v2 message (an MLLP payload) that
//! [`wardgate_proto::hl7::Message::parse`] accepts; [`transform_parsed`] takes
//! the gateway's own parse, so wardgate and the transform read one message
//! identically. The output is appended to the caller's buffer in the message's
//! own delimiters (MSH-1/MSH-2) and segment terminators; what no rule changes is
//! copied from the input.
//!
//! # What is kept as it was
//!
//! - MSH, byte for byte but MSH-7 (Date/Time of Message), a date like any
//!   other: shifted (pseudonymise) or cut to the year (minimise). The
//!   receiver's ACK matches on MSH-10 only, so MSH-7 may change; MSH-1/2 say
//!   how to read the rest.
//! - The order of the segments that are not removed, and the position of every
//!   field, component and repetition in them; trailing empty fields,
//!   components and repetitions a rule leaves behind are omitted (HL7 v2.5
//!   2.5.3: a receiver treats them as absent).
//!
//! # Segments (defaults): an allow-list
//!
//! | segment | action | why |
//! |---|---|---|
//! | MSH | keep, MSH-7 as a date | always; no rule can change it |
//! | EVN, PID, PD1, PV1, PV2, ORC, OBR, OBX, TQ1, TQ2, SPM, RXO, RXE, RXG, RXA, RXR, RXC, DG1, AL1, PRB, SFT, MRG | apply | the field tables below |
//! | any other | remove | fails closed: ROL, CTD, NK1, GT1, IN1-3, NTE, ADD (a continuation of a removed value), QPD, QRD, Z-segments, ... |
//!
//! A site may name any segment `remove`, `keep` or `apply` and set rules on any
//! address ([`Hl7Profile`]).
//!
//! # Field rules (defaults; HL7 v2.5 names)
//!
//! Rules address `SEG-N`, `SEG-N.C` or `SEG-N.C.S` ([`FieldAddress`]); the most
//! specific rule wins, and a site's rule replaces the defaults at and inside
//! its address. A value action (pseudonymise, generalise, shift) acts on the
//! first value of what it addresses (CX.1, TS.1, ...) in every repetition and
//! removes the rest unless a more specific rule keeps it ([`FieldAction`]).
//! "CX id" below means: CX.1 pseudonymised, CX.4 assigning authority and CX.5
//! identifier type code kept, the rest of the CX removed.
//!
//! **In every applied segment a field not listed is removed.** Every TS, DT,
//! DTM (and DR, and TQ.4/TQ.5) a passed segment carries is a "date": shifted
//! by the patient's offset in pseudonymise mode, cut to its year in minimise
//! mode; no real date stays next to a shifted one (PID-7 Date/Time of Birth is
//! cut to the year in both modes). Dates that are no patient's and the same
//! for every patient (a lot's expiry RXG-20 and RXA-16, SFT-6, OBX-12) are kept
//! as written: moved, they would give the patient's offset away.
//!
//!
//! **PID** (a field not listed is removed: names, aliases, phones, SSN,
//! driver's licence, mother's maiden name and identifier, religion, birth
//! place, citizenship, county, race, nationality, veterans status, ...):
//!
//! | field | name | pseudonymise | minimise |
//! |---|---|---|---|
//! | PID-1 | Set ID - PID | keep | keep |
//! | PID-2 | Patient ID | CX id (patient) | remove |
//! | PID-3 | Patient Identifier List | CX id (patient) | null `""` (required) |
//! | PID-4 | Alternate Patient ID - PID | CX id (patient) | remove |
//! | PID-5 | Patient Name | the patient's pseudonym as family name (XPN.1.1) | null `""` (required) |
//! | PID-7 | Date/Time of Birth | year | year |
//! | PID-8 | Administrative Sex | keep | keep |
//! | PID-11 | Patient Address | XAD.5 postcode to its district, XAD.6 country kept | same |
//! | PID-15 | Primary Language | keep | keep |
//! | PID-16 | Marital Status | keep | keep |
//! | PID-18 | Patient Account Number | CX id (account) | remove |
//! | PID-22 | Ethnic Group | keep | keep |
//! | PID-24 | Multiple Birth Indicator | keep | keep |
//! | PID-25 | Birth Order | keep | keep |
//! | PID-29 | Patient Death Date and Time | shift | year |
//! | PID-30 | Patient Death Indicator | keep | keep |
//!
//! **PV1** (a field not listed is removed):
//!
//! | field | name | pseudonymise | minimise |
//! |---|---|---|---|
//! | PV1-1 | Set ID - PV1 | keep | keep |
//! | PV1-2 | Patient Class | keep | keep |
//! | PV1-3 | Assigned Patient Location | keep but PL.9 (location description, free text) | same |
//! | PV1-4 | Admission Type | keep | keep |
//! | PV1-7, 8, 9, 17 | Attending, Referring, Consulting, Admitting Doctor | remove | remove |
//! | PV1-10 | Hospital Service | keep | keep |
//! | PV1-18 | Patient Type | keep | keep |
//! | PV1-19 | Visit Number | CX id (visit) | remove |
//! | PV1-44, 45 | Admit, Discharge Date/Time | shift | year |
//!
//! The assigned location stays: a pump's drug library care area is chosen by
//! it.
//!
//! **PD1**: every field removed (primary care provider, living will,
//! organ donor, ...).
//!
//! **MRG** (merges carry the patient's former identifiers; a field not listed
//! is removed): MRG-1 Prior Patient Identifier List, MRG-2 Prior Alternate
//! Patient ID and MRG-4 Prior Patient ID: CX id (patient); MRG-3 Prior Patient
//! Account Number: CX id (account); MRG-5 Prior Visit Number and MRG-6 Prior
//! Alternate Visit ID: CX id (visit); MRG-7 Prior Patient Name: remove. In
//! minimise mode MRG-1 (required) is null `""` and the others removed.
//! [`patient_ids`] returns MRG-1, MRG-2 and MRG-4 with the PID identifiers,
//! so a consent check catches a merge (ADT^A40) of an opted-out identifier.
//!
//! **Other segments.** "date" as above; "id": an order, specimen, problem or
//! prescription number: EI.1 pseudonymised with the generic identifier kind
//! (the same number gives the same pseudonym, so ORC-2 and OBR-2 still
//! match), EI.2-4 (the assigning authority) kept as codes; for an EIP the
//! first value of EIP.1 and EIP.2 pseudonymised; removed in minimise mode (a
//! route whose receiver must echo the sender's order numbers sets `ORC-2 =
//! keep`). "codes only": a CE/CWE/CNE reduced to CWE.1, .3, .4, .6
//! (identifiers and coding systems) and .7, .8 (their versions), each kept as
//! a code (`keep-code`: one token, its first subcomponent); .2 and .5 (text)
//! and .9 (original text) removed. "keep .1-.8": a location (PL, LA1, LA2)
//! without its description and street address (.9 and on), each part a code
//! (PL.4 and PL.11 by their HD parts). "keep but .3": SPS and PRL with their
//! coded parts as codes. A TQ's kept parts are codes too. "remove": names
//! (XPN, XCN: providers, operators, observers), addresses, phones, free text
//! (ST, TX, FT) and organisations. CE fields kept whole are codes from a
//! coding system (drug, units, route, service).
//!
//! **EVN**
//!   date: 2 Recorded Date/Time, 3 Date/Time Planned Event, 6 Event Occurred
//!   remove: 5 Operator ID
//!   keep: 1 Event Type Code, 4 Event Reason Code, 7 Event Facility
//! **PV2**
//!   date: 8 Expected Admit Date/Time, 9 Expected Discharge Date/Time, 14 Previous Service Date, 17 Purge Status Date, 26 Previous Treatment Date, 28 Signature On File Date, 29 First Similar Illness Date, 33 Expected Surgery Date And Time, 46 Patient Status Effective Date, 47 Expected Loa Return Date/Time, 48 Expected Pre Admission Testing Date/Time
//!   keep .1-.8: 1 Prior Pending Location
//!   remove: 3 Admit Reason, 4 Transfer Reason, 5 Patient Valuables, 6 Patient Valuables Location, 12 Visit Description, 13 Referral Source Code, 23 Clinic Organization Name
//!   keep: 2 Accommodation Code, 7 Visit User Code, 10 Estimated Length Of Inpatient Stay, 11 Actual Length Of Inpatient Stay, 15 Employment Illness Related Indicator, 16 Purge Status Code, 18 Special Program Code, 19 Retention Indicator, 20 Expected Number Of Insurance Plans, 21 Visit Publicity Code, 22 Visit Protection Indicator, 24 Patient Status Code, 25 Visit Priority Code, 27 Expected Discharge Disposition, 30 Patient Charge Adjustment Code, 31 Recurring Service Code, 32 Billing Media Code, 34 Military Partnership Code, 35 Military Non Availability Code, 36 Newborn Baby Indicator, 37 Baby Detained Indicator, 38 Mode Of Arrival Code, 39 Recreational Drug Use Code, 40 Admission Level Of Care Code, 41 Precaution Code, 42 Patient Condition Code, 43 Living Will Code, 44 Organ Donor Code, 45 Advance Directive Code, 49 Notify Clergy Code
//! **ORC**
//!   date: 9 Date/Time Of Transaction, 15 Order Effective Date/Time, 27 Filler's Expected Availability Date/Time
//!   keep; TQ.4, TQ.5 date; TQ.7, 8, 10 removed: 7 Quantity Timing
//!   id (EI.1): 2 Placer Order Number, 3 Filler Order Number, 4 Placer Group Number
//!   id (EIP.1, EIP.2): 8 Parent
//!   codes only: 16 Order Control Code Reason, 26 Advanced Beneficiary Notice Override Reason
//!   keep .1-.8: 13 Enterer's Location
//!   remove: 10 Entered By, 11 Verified By, 12 Ordering Provider, 14 Call Back Phone Number, 19 Action By, 21 Ordering Facility Name, 22 Ordering Facility Address, 23 Ordering Facility Phone Number, 24 Ordering Provider Address
//!   keep: 1 Order Control, 5 Order Status, 6 Response Flag, 17 Entering Organization, 18 Entering Device, 20 Advanced Beneficiary Notice Code, 25 Order Status Modifier, 28 Confidentiality Code, 29 Order Type, 30 Enterer Authorization Mode
//! **OBR**
//!   date: 6 Requested Date/Time, 7 Observation Date/Time, 8 Observation End Date/Time, 14 Specimen Received Date/Time, 22 Results Rpt Status Chng Date/Time, 36 Scheduled Date/Time
//!   keep; TQ.4, TQ.5 date; TQ.7, 8, 10 removed: 27 Quantity Timing
//!   id (EI.1): 2 Placer Order Number, 3 Filler Order Number
//!   id (EIP.1, EIP.2): 29 Parent
//!   codes only: 31 Reason For Study, 48 Medically Necessary Duplicate Procedure Reason
//!   keep but .3 (text): 15 Specimen Source, 26 Parent Result
//!   remove: 10 Collector Identifier, 13 Relevant Clinical Information, 16 Ordering Provider, 17 Order Callback Phone Number, 18 Placer Field 1, 19 Placer Field 2, 20 Filler Field 1, 21 Filler Field 2, 23 Charge To Practice, 28 Result Copies To, 32 Principal Result Interpreter, 33 Assistant Result Interpreter, 34 Technician, 35 Transcriptionist, 39 Collector's Comment, 43 Planned Patient Transport Comment
//!   keep: 1 Set ID Obr, 4 Universal Service Identifier, 5 Priority   Obr, 9 Collection Volume, 11 Specimen Action Code, 12 Danger Code, 24 Diagnostic Serv Sect ID, 25 Result Status, 30 Transportation Mode, 37 Number Of Sample Containers, 38 Transport Logistics Of Collected Sample, 40 Transport Arrangement Responsibility, 41 Transport Arranged, 42 Escort Required, 44 Procedure Code, 45 Procedure Code Modifier, 46 Placer Supplemental Service Information, 47 Filler Supplemental Service Information, 49 Result Handling
//! **TQ1**
//!   date: 7 Start Date/Time, 8 End Date/Time
//!   remove: 10 Condition Text, 11 Text Instruction
//!   keep: 1 Set ID Tq1, 2 Quantity, 3 Repeat Pattern, 4 Explicit Time, 5 Relative Time And Units, 6 Service Duration, 9 Priority, 12 Conjunction, 13 Occurrence Duration, 14 Total Occurrence S
//! **TQ2**
//!   id (EI.1): 3 Related Placer Number, 4 Related Filler Number, 5 Related Placer Group Number
//!   keep: 1 Set ID Tq2, 2 Sequence Results Flag, 6 Sequence Condition Code, 7 Cyclic Entry Exit Indicator, 8 Sequence Condition Time Interval, 9 Cyclic Group Maximum Number Of Repeats, 10 Special Service Request Relationship
//! **SPM**
//!   date: 18 Specimen Received Date/Time, 19 Specimen Expiration Date/Time
//!   dates (DR.1, DR.2): 17 Specimen Collection Date/Time
//!   id (EIP.1, EIP.2): 2 Specimen ID, 3 Specimen Parent Ids
//!   codes only: 21 Specimen Reject Reason
//!   remove: 14 Specimen Description
//!   keep: 1 Set ID   Spm, 4 Specimen Type, 5 Specimen Type Modifier, 6 Specimen Additives, 7 Specimen Collection Method, 8 Specimen Source Site, 9 Specimen Source Site Modifier, 10 Specimen Collection Site, 11 Specimen Role, 12 Specimen Collection Amount, 13 Grouped Specimen Count, 15 Specimen Handling Code, 16 Specimen Risk Code, 20 Specimen Availability, 22 Specimen Quality, 23 Specimen Appropriateness, 24 Specimen Condition, 25 Specimen Current Quantity, 26 Number Of Specimen Containers, 27 Container Type, 28 Container Condition, 29 Specimen Child Role
//! **RXO**
//!   codes only: 6 Provider's Pharmacy Treatment Instructions, 7 Provider's Administration Instructions
//!   keep .1-.8: 8 Deliver To Location
//!   remove: 14 Ordering Provider's Dea Number, 15 Pharmacist Treatment Supplier's Verifier ID
//!   keep: 1 Requested Give Code, 2 Requested Give Amount Minimum, 3 Requested Give Amount Maximum, 4 Requested Give Units, 5 Requested Dosage Form, 9 Allow Substitutions, 10 Requested Dispense Code, 11 Requested Dispense Amount, 12 Requested Dispense Units, 13 Number Of Refills, 16 Needs Human Review, 17 Requested Give Per Time Unit, 18 Requested Give Strength, 19 Requested Give Strength Units, 20 Indication, 21 Requested Give Rate Amount, 22 Requested Give Rate Units, 23 Total Daily Dose, 24 Supplementary Code, 25 Requested Drug Strength Volume, 26 Requested Drug Strength Volume Units, 27 Pharmacy Order Type, 28 Dispensing Interval
//! **RXE**
//!   date: 18 D T Of Most Recent Refill Or Dose Dispensed, 32 Original Order Date/Time
//!   keep; TQ.4, TQ.5 date; TQ.7, 8, 10 removed: 1 Quantity Timing
//!   id (EI.1): 15 Prescription Number
//!   codes only: 7 Provider's Administration Instructions, 21 Pharmacy Treatment Supplier's Special Dispensing Instructions
//!   keep .1-.8: 8 Deliver To Location, 42 Deliver To Patient Location
//!   remove: 13 Ordering Provider's Dea Number, 14 Pharmacist Treatment Supplier's Verifier ID, 38 Pharmacy Of Most Recent Fill, 40 Dispensing Pharmacy, 41 Dispensing Pharmacy Address, 43 Deliver To Address
//!   keep: 2 Give Code, 3 Give Amount Minimum, 4 Give Amount Maximum, 5 Give Units, 6 Give Dosage Form, 9 Substitution Status, 10 Dispense Amount, 11 Dispense Units, 12 Number Of Refills, 16 Number Of Refills Remaining, 17 Number Of Refills Doses Dispensed, 19 Total Daily Dose, 20 Needs Human Review, 22 Give Per Time Unit, 23 Give Rate Amount, 24 Give Rate Units, 25 Give Strength, 26 Give Strength Units, 27 Give Indication, 28 Dispense Package Size, 29 Dispense Package Size Unit, 30 Dispense Package Method, 31 Supplementary Code, 33 Give Drug Strength Volume, 34 Give Drug Strength Volume Units, 35 Controlled Substance Schedule, 36 Formulary Status, 37 Pharmaceutical Substance Alternative, 39 Initial Dispense Amount, 44 Pharmacy Order Type
//! **RXG**
//!   date: 20 Substance Expiration Date
//!   keep; TQ.4, TQ.5 date; TQ.7, 8, 10 removed: 3 Quantity Timing
//!   codes only: 9 Administration Notes, 13 Pharmacy Treatment Supplier's Special Administration Instructions
//!   keep .1-.8: 11 Dispense To Location
//!   keep: 1 Give Sub ID Counter, 2 Dispense Sub ID Counter, 4 Give Code, 5 Give Amount Minimum, 6 Give Amount Maximum, 7 Give Units, 8 Give Dosage Form, 10 Substitution Status, 12 Needs Human Review, 14 Give Per Time Unit, 15 Give Rate Amount, 16 Give Rate Units, 17 Give Strength, 18 Give Strength Units, 19 Substance Lot Number, 21 Substance Manufacturer Name, 22 Indication, 23 Give Drug Strength Volume, 24 Give Drug Strength Volume Units, 25 Give Barcode Identifier, 26 Pharmacy Order Type
//! **RXA**
//!   date: 3 Date/Time Start Of Administration, 4 Date/Time End Of Administration, 16 Substance Expiration Date, 22 System Entry Date/Time
//!   codes only: 9 Administration Notes, 18 Substance Treatment Refusal Reason
//!   keep .1-.8: 11 Administered At Location
//!   remove: 10 Administering Provider
//!   keep: 1 Give Sub ID Counter, 2 Administration Sub ID Counter, 5 Administered Code, 6 Administered Amount, 7 Administered Units, 8 Administered Dosage Form, 12 Administered Per Time Unit, 13 Administered Strength, 14 Administered Strength Units, 15 Substance Lot Number, 17 Substance Manufacturer Name, 19 Indication, 20 Completion Status, 21 Action Code Rxa, 23 Administered Drug Strength Volume, 24 Administered Drug Strength Volume Units, 25 Administered Barcode Identifier, 26 Pharmacy Order Type
//! **RXR**
//!   keep: 1 Route, 2 Administration Site, 3 Administration Device, 4 Administration Method, 5 Routing Instruction, 6 Administration Site Modifier
//! **RXC**
//!   keep: 1 Rx Component Type, 2 Component Code, 3 Component Amount, 4 Component Units, 5 Component Strength, 6 Component Strength Units, 7 Supplementary Code, 8 Component Drug Strength Volume, 9 Component Drug Strength Volume Units
//! **DG1**
//!   date: 5 Diagnosis Date/Time, 19 Attestation Date/Time
//!   id (EI.1): 20 Diagnosis Identifier
//!   codes only: 3 Diagnosis Code Dg1
//!   remove: 4 Diagnosis Description, 16 Diagnosing Clinician
//!   keep: 1 Set ID Dg1, 2 Diagnosis Coding Method, 6 Diagnosis Type, 7 Major Diagnostic Category, 8 Diagnostic Related Group, 9 Drg Approval Indicator, 10 Drg Grouper Review Code, 11 Outlier Type, 12 Outlier Days, 13 Outlier Cost, 14 Grouper Version And Type, 15 Diagnosis Priority, 17 Diagnosis Classification, 18 Confidential Indicator, 21 Diagnosis Action Code
//! **AL1**
//!   date: 6 Identification Date
//!   codes only: 3 Allergen Code Mnemonic Description
//!   remove: 5 Allergy Reaction Code
//!   keep: 1 Set ID Al1, 2 Allergen Type Code, 4 Allergy Severity Code
//! **PRB**
//!   date: 2 Action Date/Time, 7 Problem Established Date/Time, 8 Anticipated Problem Resolution Date/Time, 9 Actual Problem Resolution Date/Time, 15 Problem Life Cycle Status Date/Time, 16 Problem Date Of Onset
//!   id (EI.1): 4 Problem Instance ID, 5 Episode Of Care ID
//!   codes only: 3 Problem ID
//!   remove: 17 Problem Onset Text, 24 Family Significant Other Awareness Of Problem Prognosis
//!   keep: 1 Action Code, 6 Problem List Priority, 10 Problem Classification, 11 Problem Management Discipline, 12 Problem Persistence, 13 Problem Confirmation Status, 14 Problem Life Cycle Status, 18 Problem Ranking, 19 Certainty Of Problem, 20 Probability Of Problem 0 1, 21 Individual Awareness Of Problem, 22 Problem Prognosis, 23 Individual Awareness Of Prognosis, 25 Security Sensitivity
//! **SFT**
//!   date: 6 Software Install Date
//!   remove: 5 Software Product Information
//!   keep: 1 Software Vendor Organization, 2 Software Certified Version Or Release Number, 3 Software Product Name, 4 Software Binary ID
//! **OBX**
//!   date: 12 Effective Date Of Reference Range, 14 Date/Time Of The Observation, 19 Date/Time Of The Analysis
//!   id (EI.1): 21 Observation Instance Identifier
//!   codes only: 3 Observation Identifier
//!   by OBX-2 (below): 5 Observation Value
//!   remove: 13 User Defined Access Checks, 16 Responsible Observer, 18 Equipment Instance Identifier, 23 Performing Organization Name, 24 Performing Organization Address, 25 Performing Organization Medical Director
//!   keep: 1 Set ID Obx, 2 Value Type, 4 Observation Sub ID, 6 Units, 7 References Range, 8 Abnormal Flags, 9 Probability, 10 Nature Of Abnormal Test, 11 Observation Result Status, 15 Producer's ID, 17 Observation Method, 20 Observation Site, 22 Mood Code
//!
//! OBX-5 by value type (OBX-2): numeric (NM when every repetition is a
//! number, SN, NR, NA, MA, CQ, CP), ID, IS and TM kept; coded (CE, CWE, CNE)
//! codes only, as above; dates (DT, DTM, TS) shifted in pseudonymise mode,
//! cut to the year in minimise mode (like OBX-14 and OBX-19); anything else,
//! text (ST, TX, FT), names, addresses, identifiers, encapsulated data, and an
//! absent or unknown type, removed.
//!
//!
//! # Reading values
//!
//! - Escape sequences: `\F\ \S\ \T\ \R\ \E\` (and `\P\` when MSH-2 declares a
//!   truncation character) are decoded before a value is pseudonymised, read
//!   as a date or generalised; any other escape (`\X..\`, `\H\`, `\.br\`,
//!   character set switches, an open one) in such a value refuses the message
//!   ([`Hl7PrivacyError::Unreadable`]), as do bytes that are not UTF-8: a
//!   value the transform cannot read must not pass through unchanged. The
//!   defaults' kept codes and quantities ([`FieldAction::KeepPlain`]) may
//!   hold only the delimiters' escapes, else the message is refused too;
//!   removed values and a site's own `keep` are not read.
//! - An empty value stays empty and HL7's null `""` stays `""`: neither carries
//!   anything to hide, and a pseudonym of nothing would invent a value.
//! - The patient a segment belongs to is the PID segment before it (the first
//!   PID for segments before any, as in ADT^A17 or a multi-patient ORU^R01).
//!   The patient's id, for the name pseudonym and the date shift
//!   ([`Pseudonymiser::date_shift_days`]), is the first identifier
//!   [`patient_ids`] returns for that PID: the first non-empty CX.1 of PID-3,
//!   else of PID-2, else of PID-4. A message without one uses the id `""`:
//!   its dates still move, by the offset every id-less message shares, and
//!   its PID-5 (if any) becomes the pseudonym of `""`.
//! - Dates: `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]`, a real calendar
//!   date and time; anything else is refused where a date must be shifted or
//!   generalised. A shift keeps the precision and the time zone offset.
//!
//! # Limits
//!
//! The output of one message is at most [`MAX_GROWTH`] bytes for every byte in:
//! a pseudonym (16 characters) may replace a one-character value. Time and
//! memory are linear in the message; the number of segments is the parser's
//! limit ([`Limits`]). Errors never carry a value of the message, only where
//! it was.

mod profile;
mod value;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use profile::{
    FieldAction, FieldAddress, Hl7Profile, Mode, PseudonymKind, RuleError, SegmentAction,
    SegmentId, MAX_POSITION,
};
pub use value::Unreadable;

use crate::key::Pseudonymiser;
use profile::Table;
use std::fmt;
use wardgate_proto::hl7::{escape, unescape, Delimiters, Hl7Error, Limits, Message};

/// Most bytes written for one byte of input.
pub const MAX_GROWTH: usize = 16;

/// Why a message was not transformed. Nothing is appended to the output then.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Hl7PrivacyError {
    /// The message does not parse (the gateway refuses it before).
    #[error("not a parsable HL7 v2 message: {0}")]
    Parse(#[from] Hl7Error),
    /// A value that must be pseudonymised, generalised or shifted cannot be read.
    #[error("{at} (segment {segment_index}, repetition {repetition}) cannot be read to {action}: {problem}")]
    Unreadable {
        /// Where the value is (the address the rule applied at).
        at: FieldAddress,
        /// 1-based number of the segment in the message.
        segment_index: usize,
        /// 1-based repetition of the field.
        repetition: usize,
        /// The action that needed it.
        action: FieldAction,
        /// What is wrong with it.
        problem: Unreadable,
    },
    /// More patient identifiers than [`MAX_PATIENT_IDS`]: each is keyed,
    /// checked for consent and remembered for re-identification, so their
    /// number is bounded as a DICOM object's Other Patient IDs are.
    #[error("the message carries more than {max} patient identifiers (PID-2/3/4, MRG-1/2/4 repetitions)")]
    TooManyPatientIds {
        /// The bound.
        max: usize,
    },
    /// A patient identifier (PID-2/3/4, MRG-1/2/4 CX.1) cannot be read: no consent check,
    /// pseudonym or date shift can be made for the patient.
    #[error("the patient identifier at {at} (segment {segment_index}, repetition {repetition}) cannot be read: {problem}")]
    PatientId {
        /// PID-2.1, PID-3.1, PID-4.1, MRG-1.1, MRG-2.1 or MRG-4.1.
        at: FieldAddress,
        /// 1-based number of the PID segment in the message.
        segment_index: usize,
        /// 1-based repetition of the field.
        repetition: usize,
        /// What is wrong with it.
        problem: Unreadable,
    },
}

/// How many of one segment were removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemovedSegments {
    /// The segment.
    pub segment: SegmentId,
    /// How many.
    pub count: u32,
}

/// What the transform changed, for the route's event. A field (one field of
/// one segment, all its repetitions) counts once under each thing done to it:
/// PID-3 with CX.1 pseudonymised and CX.6 dropped counts as pseudonymised and
/// as removed. Only what changed is counted: an empty field removed, or a
/// birth date that was a year already, is not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hl7Outcome {
    /// Fields emptied (or nulled) in whole or part.
    pub fields_removed: u32,
    /// Fields with a value replaced by a pseudonym.
    pub fields_pseudonymised: u32,
    /// Fields with a value cut to a year or district.
    pub fields_generalised: u32,
    /// Fields with a date moved.
    pub fields_shifted: u32,
    /// Segments removed, by id, in the order first seen.
    pub segments_removed: Vec<RemovedSegments>,
}

impl Hl7Outcome {
    /// True when anything was changed.
    pub fn changed(&self) -> bool {
        self.fields_removed > 0
            || self.fields_pseudonymised > 0
            || self.fields_generalised > 0
            || self.fields_shifted > 0
            || !self.segments_removed.is_empty()
    }

    fn note_segment(&mut self, segment: SegmentId) {
        match self
            .segments_removed
            .iter_mut()
            .find(|r| r.segment == segment)
        {
            Some(r) => r.count = r.count.saturating_add(1),
            None => self
                .segments_removed
                .push(RemovedSegments { segment, count: 1 }),
        }
    }

    fn note_field(&mut self, flags: u8) {
        let add = |n: &mut u32, bit: u8| {
            if flags & bit != 0 {
                *n = n.saturating_add(1);
            }
        };
        add(&mut self.fields_removed, REMOVED);
        add(&mut self.fields_pseudonymised, PSEUDONYMISED);
        add(&mut self.fields_generalised, GENERALISED);
        add(&mut self.fields_shifted, SHIFTED);
    }
}

impl fmt::Display for Hl7Outcome {
    /// `fields: 3 pseudonymised, 2 generalised, 1 shifted, 14 removed; segments removed: NK1 ×2, ZPI`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.changed() {
            return f.write_str("unchanged");
        }
        let mut sep = "fields: ";
        for (n, what) in [
            (self.fields_pseudonymised, "pseudonymised"),
            (self.fields_generalised, "generalised"),
            (self.fields_shifted, "shifted"),
            (self.fields_removed, "removed"),
        ] {
            if n > 0 {
                write!(f, "{sep}{n} {what}")?;
                sep = ", ";
            }
        }
        if !self.segments_removed.is_empty() {
            if sep == ", " {
                f.write_str("; ")?;
            }
            f.write_str("segments removed: ")?;
            for (i, r) in self.segments_removed.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{}", r.segment)?;
                if r.count > 1 {
                    write!(f, " ×{}", r.count)?;
                }
            }
        }
        Ok(())
    }
}

const REMOVED: u8 = 1;
const PSEUDONYMISED: u8 = 2;
const GENERALISED: u8 = 4;
const SHIFTED: u8 = 8;

/// A patient identifier a message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientId {
    /// The segment it is in: PID, or MRG (a merge's prior identifiers).
    pub segment: SegmentId,
    /// The field it is in: PID-2, 3 or 4; MRG-1, 2 or 4.
    pub field: u8,
    /// CX.1, escape sequences decoded, surrounding whitespace trimmed (as
    /// pseudonyms are keyed).
    pub id: String,
    /// CX.4.1, the assigning authority's namespace id, decoded (invalid
    /// UTF-8 replaced); empty when absent.
    pub assigning_authority: String,
    /// CX.5, the identifier type code (`MR`, `PI`, ...), decoded likewise.
    pub type_code: String,
}

/// Transforms one message (parsed here with the default [`Limits`]); see
/// [`transform_parsed`].
pub fn transform(
    message: &[u8],
    profile: &Hl7Profile,
    p: &Pseudonymiser,
    out: &mut Vec<u8>,
) -> Result<Hl7Outcome, Hl7PrivacyError> {
    let m = Message::parse(message, &Limits::default())?;
    transform_parsed(&m, profile, p, out)
}

/// Appends to `out` the message as the profile says a destination receives
/// it, and says what changed. On an error nothing is appended.
pub fn transform_parsed(
    message: &Message<'_>,
    profile: &Hl7Profile,
    p: &Pseudonymiser,
    out: &mut Vec<u8>,
) -> Result<Hl7Outcome, Hl7PrivacyError> {
    let start = out.len();
    let first_pid = message
        .segments()
        .enumerate()
        .find(|(_, s)| s.id() == b"PID")
        .map(|(i, s)| (s.raw(), i + 1));
    let t = Transformer {
        d: message.delimiters(),
        profile,
        p,
        pid: first_pid,
        patient: None,
        seg: SegmentId::MSH,
        seg_index: 0,
        body: &[],
        flags: 0,
        outcome: Hl7Outcome::default(),
    };
    let r = t.run(message.raw(), out);
    if r.is_err() {
        out.truncate(start);
    }
    r
}

/// The words of a message's patient segments (PID but PID-1, and PD1, NK1,
/// GT1, IN1, IN2, MRG but their set ids), as [`word_key`]s: names,
/// identifiers, addresses, phone numbers, dates. A record that quotes the
/// message's text (a refusal naming the value it could not read) must not
/// repeat them where the site keeps raw identifiers out of its records (found
/// by an adversarial review: a drug text "PCA for" and the patient's name,
/// quoted in an infusion refusal). Each value is read decoded (escapes, and
/// bytes not UTF-8 replaced as a quote of it is) and split into words as
/// [`words_of`] splits the quote. Words of a name field (PID-5, 6, 9, NK1-2,
/// GT1-3, IN1-16, MRG-7) of two letters or more (Li, Wu), of others three;
/// digits of a phone field (PID-13, 14, NK1-5, 6) three or more, of others
/// four. `complete` is false when more than [`MAX_PATIENT_WORDS`] were found:
/// a caller must then not rely on the list.
pub fn patient_words(message: &Message<'_>) -> PatientWords {
    let mut out = PatientWords {
        words: Vec::new(),
        complete: true,
    };
    // Name fields first, so a long list keeps them.
    for names_pass in [true, false] {
        for seg in message.segments() {
            let id = seg.id();
            let (first, names, phones): (usize, &[usize], &[usize]) = match id {
                b"PID" => (2, &[5, 6, 9], &[13, 14]),
                b"NK1" => (2, &[2], &[5, 6]),
                b"GT1" => (2, &[3], &[]),
                b"IN1" => (2, &[16], &[]),
                b"MRG" => (1, &[7], &[]),
                b"PD1" | b"IN2" => (2, &[], &[]),
                _ => continue,
            };
            for n in first..=seg.field_count() {
                let is_name = names.contains(&n);
                if is_name != names_pass {
                    continue;
                }
                let text = seg.field(n).text();
                let (letters_min, digits_min) = if is_name {
                    (2, 3)
                } else if phones.contains(&n) {
                    (3, 3)
                } else {
                    (3, 4)
                };
                for w in words_of(&text) {
                    let letters = w.chars().any(char::is_alphabetic);
                    let len = w.chars().count();
                    if (letters && len < letters_min) || (!letters && len < digits_min) {
                        continue;
                    }
                    let k = word_key(w);
                    if out.words.contains(&k) {
                        continue;
                    }
                    if out.words.len() == MAX_PATIENT_WORDS {
                        out.complete = false;
                        return out;
                    }
                    out.words.push(k);
                }
            }
        }
    }
    out
}

/// What [`patient_words`] found.
#[derive(Debug, Clone, Default)]
pub struct PatientWords {
    /// The words, as [`word_key`]s.
    pub words: Vec<String>,
    /// False when there were more than [`MAX_PATIENT_WORDS`].
    pub complete: bool,
}

/// Most words [`patient_words`] returns: a real patient's are a few dozen.
pub const MAX_PATIENT_WORDS: usize = 512;

/// The words of a text: runs of letters and digits (Unicode), each with the
/// characters that join a word (an apostrophe, a combining mark) inside it
/// taken as separators, as on both sides of a comparison.
pub fn words_of(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// A word as it is compared: lower-cased, the Turkish dotted and dotless i
/// both as `i` (`YILMAZ` and `Yılmaz`, `İ` and `i`).
pub fn word_key(w: &str) -> String {
    w.chars()
        .flat_map(char::to_lowercase)
        .filter(|c| *c != '\u{307}')
        .map(|c| if c == 'ı' { 'i' } else { c })
        .collect()
}

/// Every patient identifier the message carries (parsed here); see
/// [`patient_ids_parsed`].
pub fn patient_ids(message: &[u8]) -> Result<Vec<PatientId>, Hl7PrivacyError> {
    patient_ids_parsed(&Message::parse(message, &Limits::default())?)
}

/// Every patient identifier the message carries, for consent checks and
/// events: of each PID and MRG segment in order, every repetition's CX.1 of
/// PID-3, then PID-2's, then PID-4's; of MRG-1 (Prior Patient Identifier
/// List), then MRG-2 (Prior Alternate Patient ID), then MRG-4 (Prior Patient
/// ID): a merge (ADT^A40) of a patient who opted out under the identifier it
/// retires must be caught. Empty ones and nulls (`""`) are left out. The first
/// PID identifier is the patient's id the transform shifts dates with. A CX.1
/// that cannot be read (escape, UTF-8) is an error: a consent check must not
/// miss it.
pub fn patient_ids_parsed(message: &Message<'_>) -> Result<Vec<PatientId>, Hl7PrivacyError> {
    let d = message.delimiters();
    let mut ids = Vec::new();
    let mut too_many = false;
    for (i, seg) in message.segments().enumerate() {
        let segment = match seg.id() {
            b"PID" => SegmentId::PID,
            b"MRG" => SegmentId::MRG,
            _ => continue,
        };
        for_each_id(seg.raw(), segment, &d, i + 1, |field, rep, id| {
            if ids.len() == MAX_PATIENT_IDS {
                too_many = true;
                return false;
            }
            let comp = |n: usize| split(rep, d.component).nth(n).unwrap_or_default();
            let lossy =
                |raw: &[u8]| String::from_utf8_lossy(unescape(raw, &d).as_ref()).into_owned();
            ids.push(PatientId {
                segment,
                field,
                id: id.to_owned(),
                assigning_authority: lossy(first_sub(comp(3), &d)),
                type_code: lossy(comp(4)),
            });
            true
        })?;
        if too_many {
            return Err(Hl7PrivacyError::TooManyPatientIds {
                max: MAX_PATIENT_IDS,
            });
        }
    }
    Ok(ids)
}

/// Most patient identifiers one message may carry (all PID and MRG
/// repetitions together), as [`crate::dicom::MAX_OTHER_PATIENT_IDS`] bounds a
/// DICOM object's: a real message carries a handful (found by an adversarial
/// review: 450 000 repetitions of PID-3 were each keyed and written to the
/// re-identification table, 17 MB from one 3.7 MB message).
pub const MAX_PATIENT_IDS: usize = 64;

/// Calls `f(field, repetition, id)` for each identifier of a PID (or MRG)
/// segment in [`patient_ids_parsed`]'s order until it returns false.
fn for_each_id(
    raw: &[u8],
    segment: SegmentId,
    d: &Delimiters,
    segment_index: usize,
    mut f: impl FnMut(u8, &[u8], &str) -> bool,
) -> Result<(), Hl7PrivacyError> {
    let body = raw.get(4..).unwrap_or_default();
    let field = |n: usize| split(body, d.field).nth(n - 1).unwrap_or_default();
    let fields: [u8; 3] = if segment == SegmentId::MRG {
        [1, 2, 4]
    } else {
        [3, 2, 4]
    };
    for n in fields {
        for (r, rep) in split(field(usize::from(n)), d.repetition).enumerate() {
            let first = first_component(rep, d);
            let atom = first_sub(first, d);
            if atom.is_empty() || atom == value::NULL {
                // Found by an adversarial review: `&MRN4711` skipped the
                // consent check, and the transform dropped the number.
                let later = d
                    .subcomponent
                    .is_some_and(|sc| split(first, sc).skip(1).any(|p| !p.trim_ascii().is_empty()));
                if later {
                    return Err(Hl7PrivacyError::PatientId {
                        at: FieldAddress::at(segment, u16::from(n), 1, 0),
                        segment_index,
                        repetition: r + 1,
                        problem: value::Unreadable::Misplaced,
                    });
                }
                continue;
            }
            let text = value::text(atom, d).map_err(|problem| Hl7PrivacyError::PatientId {
                at: FieldAddress::at(segment, u16::from(n), 1, 0),
                segment_index,
                repetition: r + 1,
                problem,
            })?;
            let id = text.trim();
            if !id.is_empty() && !f(n, rep, id) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// `raw` split at every `sep`, as `slice::split` does (an empty input is one
/// empty part), found with memchr.
fn split(raw: &[u8], sep: u8) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(raw);
    std::iter::from_fn(move || {
        let r = rest?;
        match memchr::memchr(sep, r) {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

fn first_component<'a>(raw: &'a [u8], d: &Delimiters) -> &'a [u8] {
    split(raw, d.component).next().unwrap_or_default()
}

fn first_sub<'a>(raw: &'a [u8], d: &Delimiters) -> &'a [u8] {
    match d.subcomponent {
        Some(s) => split(raw, s).next().unwrap_or_default(),
        None => raw,
    }
}

/// Inserts `n` copies of `sep` at `at`, moving what follows.
fn insert(out: &mut Vec<u8>, at: usize, sep: u8, n: usize) {
    if n == 0 {
        return;
    }
    let len = out.len();
    out.resize(len + n, sep);
    out.copy_within(at..len, at + n);
    out[at..at + n].fill(sep);
}

/// Writes a list of parts separated by `sep`, leaving out trailing empty
/// parts: the separators before a part are written only once it turns out
/// not to be empty (moving only that part's bytes, so the cost stays linear).
struct Joiner {
    sep: u8,
    owed: usize,
}

impl Joiner {
    fn new(sep: u8, owed: usize) -> Joiner {
        Joiner { sep, owed }
    }

    /// A part was written from `mark` to the end of `out`.
    fn done(&mut self, out: &mut Vec<u8>, mark: usize) {
        if out.len() > mark {
            insert(out, mark, self.sep, self.owed);
            self.owed = 0;
        }
        self.owed += 1;
    }
}

/// Where a rule is being applied, for errors.
#[derive(Clone, Copy)]
struct Loc {
    field: u16,
    component: u16,
    sub: u16,
    repetition: usize,
}

/// What a value action is given: a repetition of a field, a component or a
/// subcomponent.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Field,
    Component,
    Sub,
}

/// The patient of the current segment, read when first needed.
struct Patient {
    id: String,
    pseudonym: Option<String>,
    shift: Option<i32>,
}

struct Transformer<'a, 'p> {
    d: Delimiters,
    profile: &'p Hl7Profile,
    p: &'p Pseudonymiser,
    /// The PID segment the current segment belongs to, and its number.
    pid: Option<(&'a [u8], usize)>,
    patient: Option<Patient>,
    seg: SegmentId,
    seg_index: usize,
    /// The current segment after its id and first field separator.
    body: &'a [u8],
    /// What was done to the current field.
    flags: u8,
    outcome: Hl7Outcome,
}

/// Every field removed: a segment applied without rules.
static REMOVE_ALL: Table = Table::remove_all();

impl<'a> Transformer<'a, '_> {
    fn run(mut self, raw: &'a [u8], out: &mut Vec<u8>) -> Result<Hl7Outcome, Hl7PrivacyError> {
        out.reserve(raw.len());
        // Segments are the runs between CR and LF bytes, as the parser found
        // them (it refused mixed terminators); the terminators after a segment
        // go with it.
        let term = |b: &u8| *b == b'\r' || *b == b'\n';
        let mut pos = raw.iter().position(|b| !term(b)).unwrap_or(raw.len());
        out.extend_from_slice(&raw[..pos]);
        let mut index = 0;
        while pos < raw.len() {
            let end = memchr::memchr2(b'\r', b'\n', &raw[pos..]).map_or(raw.len(), |i| pos + i);
            let next = raw[end..]
                .iter()
                .position(|b| !term(b))
                .map_or(raw.len(), |i| end + i);
            let (seg, tail) = (&raw[pos..end], &raw[end..next]);
            pos = next;
            index += 1;
            let id = SegmentId::new(seg.get(..3).unwrap_or_default())
                .ok_or(Hl7Error::InvalidSegmentId { index })?;
            if index == 1 {
                // MSH: the parser made sure it is first.
                self.msh(out, seg)?;
                out.extend_from_slice(tail);
                continue;
            }
            if id == SegmentId::PID {
                self.pid = Some((seg, index));
                self.patient = None;
            }
            match self.profile.segment_action(id) {
                SegmentAction::Remove => self.outcome.note_segment(id),
                SegmentAction::Keep => {
                    out.extend_from_slice(seg);
                    out.extend_from_slice(tail);
                }
                SegmentAction::Apply => {
                    let t = self.profile.table(id).unwrap_or(&REMOVE_ALL);
                    self.segment(out, t, id, index, seg)?;
                    out.extend_from_slice(tail);
                }
            }
        }
        Ok(self.outcome)
    }

    /// MSH byte for byte but MSH-7 (Date/Time of Message), which is a date
    /// like any other: shifted or cut to the year by the MSH table.
    fn msh(&mut self, out: &mut Vec<u8>, seg: &'a [u8]) -> Result<(), Hl7PrivacyError> {
        let fs = self.d.field;
        // MSH-1 is the field separator itself: MSH-7 is the sixth field after it.
        let body = seg.get(4..).unwrap_or_default();
        let (Some(t), Some(raw)) = (self.profile.table(SegmentId::MSH), split(body, fs).nth(5))
        else {
            out.extend_from_slice(seg);
            return Ok(());
        };
        let start = raw.as_ptr() as usize - seg.as_ptr() as usize;
        self.seg = SegmentId::MSH;
        self.seg_index = 1;
        self.body = body;
        self.flags = 0;
        out.extend_from_slice(&seg[..start]);
        self.field(out, t, 7, raw)?;
        self.outcome.note_field(self.flags);
        out.extend_from_slice(&seg[start + raw.len()..]);
        Ok(())
    }

    fn segment(
        &mut self,
        out: &mut Vec<u8>,
        t: &Table,
        id: SegmentId,
        index: usize,
        seg: &'a [u8],
    ) -> Result<(), Hl7PrivacyError> {
        self.seg = id;
        self.seg_index = index;
        out.extend_from_slice(&seg[..3]);
        self.body = seg.get(4..).unwrap_or_default();
        let Some(body) = seg.get(4..) else {
            return Ok(());
        };
        let fs = self.d.field;
        let mut fields = Joiner::new(fs, 1);
        for (i, f) in split(body, fs).enumerate() {
            let mark = out.len();
            self.flags = 0;
            self.field(out, t, i + 1, f)?;
            self.outcome.note_field(self.flags);
            fields.done(out, mark);
        }
        Ok(())
    }

    fn field(
        &mut self,
        out: &mut Vec<u8>,
        t: &Table,
        n: usize,
        raw: &'a [u8],
    ) -> Result<(), Hl7PrivacyError> {
        let position = |i: usize| u16::try_from(i).ok().filter(|p| *p <= MAX_POSITION);
        let mut loc = Loc {
            field: u16::MAX,
            component: 0,
            sub: 0,
            repetition: 1,
        };
        let Some(f) = position(n) else {
            return self.apply(out, t.unlisted, Level::Field, raw, loc);
        };
        loc.field = f;
        let base = self.resolve(t.get(f, 0, 0).unwrap_or(t.unlisted), raw);
        if !t.has_below(f, 0) {
            return self.apply(out, base, Level::Field, raw, loc);
        }
        let d = self.d;
        let mut reps = Joiner::new(d.repetition, 0);
        for (r, rep) in split(raw, d.repetition).enumerate() {
            let rep_mark = out.len();
            loc.repetition = r + 1;
            let mut comps = Joiner::new(d.component, 0);
            for (ci, comp) in split(rep, d.component).enumerate() {
                let comp_mark = out.len();
                let c = position(ci + 1);
                let ca = match t.component(f, ci + 1) {
                    Some(a) => self.resolve(a, comp),
                    None => base.inherited(ci + 1),
                };
                loc.component = c.unwrap_or(u16::MAX);
                loc.sub = 0;
                match (c, d.subcomponent) {
                    (Some(c), Some(s)) if t.has_below(f, c) => {
                        let mut subs = Joiner::new(s, 0);
                        for (si, sub) in split(comp, s).enumerate() {
                            let sub_mark = out.len();
                            let sn = position(si + 1);
                            let sa = match sn.and_then(|sn| t.get(f, c, sn)) {
                                Some(a) => self.resolve(a, sub),
                                None => ca.inherited(si + 1),
                            };
                            loc.sub = sn.unwrap_or(u16::MAX);
                            self.apply(out, sa, Level::Sub, sub, loc)?;
                            subs.done(out, sub_mark);
                        }
                    }
                    // No subcomponent separator declared: the component is its
                    // own first subcomponent, and takes that rule.
                    (Some(c), None) if t.has_below(f, c) => {
                        let first = t.get(f, c, 1).map_or(ca, |a| self.resolve(a, comp));
                        self.apply(out, first, Level::Component, comp, loc)?;
                    }
                    _ => self.apply(out, ca, Level::Component, comp, loc)?,
                }
                comps.done(out, comp_mark);
            }
            reps.done(out, rep_mark);
        }
        Ok(())
    }

    /// OBX-5's action from OBX-2 (and, for NM, from the value: a number
    /// that is not one is removed, whatever it says); every other action as
    /// it is.
    fn resolve(&self, action: FieldAction, raw: &[u8]) -> FieldAction {
        if action != FieldAction::ByValueType {
            return action;
        }
        let d = &self.d;
        let obx2 = split(self.body, d.field).nth(1).unwrap_or_default();
        // A value type with parts (`SN^x`) is no type wardgate knows: the
        // value goes.
        let value_type = if has_separators(obx2, d) {
            &b""[..]
        } else {
            obx2
        };
        // Each kept type is kept only when its value has that type's form: a
        // name in a numeric or time value is no number or time, and goes.
        let well_formed = well_formed(value_type, raw, d);
        if !well_formed {
            return FieldAction::Remove;
        }
        match value_type {
            b"NM" | b"SN" | b"NR" | b"NA" | b"MA" | b"CQ" | b"ID" | b"IS" | b"TM" => {
                FieldAction::Keep
            }
            // Written by `coded`: the codes only.
            b"CE" | b"CWE" | b"CNE" => FieldAction::ByValueType,
            b"DT" | b"DTM" | b"TS" if self.profile.mode() == Mode::Pseudonymise => {
                FieldAction::ShiftDate
            }
            b"DT" | b"DTM" | b"TS" => FieldAction::GeneraliseYear,
            _ => FieldAction::Remove,
        }
    }

    /// Applies `action` to a field (every repetition), a component or a
    /// subcomponent.
    fn apply(
        &mut self,
        out: &mut Vec<u8>,
        action: FieldAction,
        level: Level,
        raw: &'a [u8],
        mut loc: Loc,
    ) -> Result<(), Hl7PrivacyError> {
        match self.resolve(action, raw) {
            FieldAction::Keep => out.extend_from_slice(raw),
            FieldAction::KeepPlain => {
                if let Err(problem) = value::decode(raw, &self.d) {
                    return Err(Hl7PrivacyError::Unreadable {
                        at: FieldAddress::at(self.seg, loc.field, loc.component, loc.sub),
                        segment_index: self.seg_index,
                        repetition: loc.repetition,
                        action: FieldAction::KeepPlain,
                        problem,
                    });
                }
                out.extend_from_slice(raw);
            }
            // A coded OBX-5 (CE, CWE, CNE).
            FieldAction::ByValueType => self.coded(out, level, raw),
            FieldAction::Remove => {
                if has_content(raw, &self.d) {
                    self.flags |= REMOVED;
                }
            }
            FieldAction::KeepCode => {
                let unit = if level == Level::Sub {
                    raw
                } else {
                    first_sub(
                        first_component(
                            split(raw, self.d.repetition).next().unwrap_or_default(),
                            &self.d,
                        ),
                        &self.d,
                    )
                };
                let token = !unit.is_empty()
                    && unit.len() <= 20
                    && unit
                        .iter()
                        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
                if token {
                    out.extend_from_slice(unit);
                }
                if has_content(raw, &self.d) && !(token && unit.len() == raw.len()) {
                    self.flags |= REMOVED;
                }
            }
            FieldAction::Null => {
                if has_content(raw, &self.d) {
                    out.extend_from_slice(value::NULL);
                    if raw != value::NULL {
                        self.flags |= REMOVED;
                    }
                }
            }
            a if level == Level::Field => {
                let sep = self.d.repetition;
                let mut reps = Joiner::new(sep, 0);
                for (r, rep) in split(raw, sep).enumerate() {
                    let mark = out.len();
                    loc.repetition = r + 1;
                    self.value(out, a, Level::Field, rep, loc)?;
                    reps.done(out, mark);
                }
            }
            a => self.value(out, a, level, raw, loc)?,
        }
        Ok(())
    }

    /// A coded value (CE, CWE, CNE) with its codes only: the identifiers,
    /// coding systems and their versions (components 1, 3, 4, 6, 7, 8); the
    /// text, alternate text and original text (2, 5, 9) and anything after
    /// removed. Below a field (a site's rule on OBX-5.1) it is kept whole.
    fn coded(&mut self, out: &mut Vec<u8>, level: Level, raw: &[u8]) {
        let d = self.d;
        if level != Level::Field {
            out.extend_from_slice(raw);
            return;
        }
        let mut reps = Joiner::new(d.repetition, 0);
        for rep in split(raw, d.repetition) {
            let rep_mark = out.len();
            let mut comps = Joiner::new(d.component, 0);
            for (i, comp) in split(rep, d.component).enumerate() {
                let mark = out.len();
                let kept =
                    u16::try_from(i + 1).is_ok_and(|c| profile::CODE_COMPONENTS.contains(&c));
                if kept {
                    // A code's parts are single values: anything after a
                    // subcomponent separator (`c&Zebulonova`) is no code.
                    let first = first_sub(comp, &d);
                    out.extend_from_slice(first);
                    if first.len() != comp.len() && has_content(&comp[first.len()..], &d) {
                        self.flags |= REMOVED;
                    }
                } else if has_content(comp, &d) {
                    self.flags |= REMOVED;
                }
                comps.done(out, mark);
            }
            reps.done(out, rep_mark);
        }
    }

    /// Applies a value action to one repetition, component or subcomponent:
    /// its first value is replaced, the rest removed.
    fn value(
        &mut self,
        out: &mut Vec<u8>,
        action: FieldAction,
        level: Level,
        unit: &'a [u8],
        loc: Loc,
    ) -> Result<(), Hl7PrivacyError> {
        if !has_content(unit, &self.d) {
            return Ok(());
        }
        if unit == value::NULL {
            out.extend_from_slice(value::NULL);
            return Ok(());
        }
        let d = self.d;
        if action == FieldAction::PatientPseudonym {
            self.write_patient_pseudonym(out)?;
            self.flags |= PSEUDONYMISED;
            return Ok(());
        }
        let atom = match level {
            Level::Field => first_sub(first_component(unit, &d), &d),
            Level::Component => first_sub(unit, &d),
            Level::Sub => unit,
        };
        if has_content(&unit[atom.len()..], &d) {
            self.flags |= REMOVED;
        }
        if atom.is_empty() {
            return Ok(());
        }
        if atom == value::NULL {
            out.extend_from_slice(value::NULL);
            return Ok(());
        }
        debug_assert!(action.reads_value(), "{action:?}");
        let fail = |s: &Self, problem| Hl7PrivacyError::Unreadable {
            at: FieldAddress::at(s.seg, loc.field, loc.component, loc.sub),
            segment_index: s.seg_index,
            repetition: loc.repetition,
            action,
            problem,
        };
        let text = value::text(atom, &d).map_err(|e| fail(self, e))?;
        match action {
            FieldAction::Pseudonymise(kind) if !text.trim().is_empty() => {
                out.extend_from_slice(self.p.pseudonym(kind.as_str(), &text).as_bytes());
                self.flags |= PSEUDONYMISED;
            }
            FieldAction::GeneraliseYear => {
                value::parse_date(&text).map_err(|e| fail(self, e))?;
                out.extend_from_slice(&text.as_bytes()[..4]);
                if text.len() > 4 {
                    self.flags |= GENERALISED;
                }
            }
            FieldAction::GeneralisePostcode => {
                let district = value::district(&text);
                escape(district.as_bytes(), &d, out);
                if district != text {
                    self.flags |= GENERALISED;
                }
            }
            FieldAction::KeepDate => {
                value::parse_date(&text).map_err(|e| fail(self, e))?;
                out.extend_from_slice(atom);
            }
            FieldAction::ShiftDate => {
                let date = value::parse_date(&text).map_err(|e| fail(self, e))?;
                let days = self.shift_days()?;
                let mark = out.len();
                value::write_shifted(&date, days, out).map_err(|e| fail(self, e))?;
                if out[mark..].iter().any(|&b| is_delimiter(b, &d)) {
                    // A time zone sign that is also a delimiter (`MSH+...`):
                    // written escaped, as it was read.
                    let written = out.split_off(mark);
                    escape(&written, &d, out);
                }
                self.flags |= SHIFTED;
            }
            // A blank value to pseudonymise stays as it is; the other actions
            // are `apply`'s.
            _ => {}
        }
        Ok(())
    }

    /// The current segment's patient, read from its PID on first use.
    fn patient(&mut self) -> Result<&mut Patient, Hl7PrivacyError> {
        if self.patient.is_none() {
            let mut id = String::new();
            if let Some((pid, index)) = self.pid {
                for_each_id(pid, SegmentId::PID, &self.d, index, |_, _, first| {
                    id.push_str(first);
                    false
                })?;
            }
            self.patient = Some(Patient {
                id,
                pseudonym: None,
                shift: None,
            });
        }
        Ok(self.patient.get_or_insert_with(|| Patient {
            id: String::new(),
            pseudonym: None,
            shift: None,
        }))
    }

    fn write_patient_pseudonym(&mut self, out: &mut Vec<u8>) -> Result<(), Hl7PrivacyError> {
        let p = self.p;
        let patient = self.patient()?;
        let pseudonym = patient
            .pseudonym
            .get_or_insert_with(|| p.patient(&patient.id));
        out.extend_from_slice(pseudonym.as_bytes());
        Ok(())
    }

    fn shift_days(&mut self) -> Result<i32, Hl7PrivacyError> {
        let p = self.p;
        let patient = self.patient()?;
        Ok(*patient
            .shift
            .get_or_insert_with(|| p.date_shift_days(&patient.id)))
    }
}

/// An HL7 NM: optional spaces, an optional sign, digits with at most one
/// decimal point (at least one digit); or empty.
fn is_number(raw: &[u8]) -> bool {
    let t = raw.trim_ascii();
    let t = t
        .strip_prefix(b"+")
        .or_else(|| t.strip_prefix(b"-"))
        .unwrap_or(t);
    let digits = t.iter().filter(|b| b.is_ascii_digit()).count();
    let points = t.iter().filter(|&&b| b == b'.').count();
    raw.is_empty() || (digits > 0 && points <= 1 && digits + points == t.len())
}

/// Whether an OBX-5 of `value_type` has that type's form (types that are not
/// kept whole are judged elsewhere: true).
fn well_formed(value_type: &[u8], raw: &[u8], d: &Delimiters) -> bool {
    let comps = |r| split(r, d.component);
    let subs = |c| split(c, d.subcomponent.unwrap_or(d.component));
    let plain = |c: &[u8]| is_number(c) && !has_separators(c, d);
    let mut reps = split(raw, d.repetition);
    match value_type {
        b"NM" => reps.all(is_number),
        // Structured numeric: comparator ^ number ^ separator ^ number.
        b"SN" => reps.all(|r| {
            let mut c = comps(r);
            let (cmp, n1, sep, n2) = (c.next(), c.next(), c.next(), c.next());
            c.next().is_none()
                && matches!(
                    cmp.unwrap_or_default().trim_ascii(),
                    b"" | b">" | b"<" | b">=" | b"<=" | b"=" | b"<>"
                )
                && n1.is_none_or(plain)
                && matches!(
                    sep.unwrap_or_default().trim_ascii(),
                    b"" | b"-" | b"+" | b"/" | b"." | b":"
                )
                && n2.is_none_or(plain)
        }),
        // Numeric range (low ^ high) and numeric array: numbers only.
        b"NR" => reps.all(|r| comps(r).count() <= 2 && comps(r).all(plain)),
        b"NA" => reps.all(|r| comps(r).all(plain)),
        b"MA" => reps.all(|r| comps(r).all(|c| subs(c).all(is_number))),
        // Quantity ^ units: the units' code and coding system only (CE.1,
        // CE.3), as a coded value keeps; text in them and the value goes.
        b"CQ" => reps.all(|r| {
            let mut c = comps(r);
            let (quantity, units) = (c.next(), c.next());
            c.next().is_none()
                && quantity.is_some_and(plain)
                && units.is_none_or(|u| {
                    subs(u)
                        .enumerate()
                        .all(|(i, x)| matches!(i, 0 | 2) || x.is_empty())
                })
        }),
        // Coded values of HL7 tables: one token each.
        b"ID" | b"IS" => reps.all(|r| !has_separators(r, d) && !r.contains(&b' ')),
        b"TM" => reps.all(|r| is_time(r) && !has_separators(r, d)),
        _ => true,
    }
}

/// True when `raw` holds a component, subcomponent or repetition separator.
fn has_separators(raw: &[u8], d: &Delimiters) -> bool {
    raw.iter()
        .any(|&b| b == d.component || b == d.repetition || Some(b) == d.subcomponent)
}

/// HL7 TM: `HH[MM[SS[.S[S[S[S]]]]]][+/-ZZZZ]`, or empty.
fn is_time(raw: &[u8]) -> bool {
    let t = raw.trim_ascii();
    let (time, zone) = match t.iter().position(|&b| b == b'+' || b == b'-') {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let (whole, frac) = match time.iter().position(|&b| b == b'.') {
        Some(i) => (&time[..i], Some(&time[i + 1..])),
        None => (time, None),
    };
    let digits = |x: &[u8]| x.iter().all(u8::is_ascii_digit);
    t.is_empty()
        || (digits(whole)
            && matches!(whole.len(), 2 | 4 | 6)
            && frac.is_none_or(|f| whole.len() == 6 && (1..=4).contains(&f.len()) && digits(f))
            && zone.is_none_or(|z| z.len() == 4 && digits(z)))
}

/// True when `raw` holds more than component, subcomponent and repetition
/// separators: `^^~^` says nothing, and nothing is done to it.
fn has_content(raw: &[u8], d: &Delimiters) -> bool {
    raw.iter()
        .any(|&b| b != d.component && b != d.repetition && Some(b) != d.subcomponent)
}

fn is_delimiter(b: u8, d: &Delimiters) -> bool {
    b == d.field
        || b == d.component
        || b == d.repetition
        || Some(b) == d.escape
        || Some(b) == d.subcomponent
        || Some(b) == d.truncation
}
