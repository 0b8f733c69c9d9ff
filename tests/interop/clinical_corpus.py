"""An adversarial corpus of HL7 infusion orders (IHE PCD-03, RGV^O15), each with
the verdict wardgate must reach: generated from the classes of issue 16 (unit case,
repetitions, coded parts that disagree, patient weight, every place a rate is
stated, parser differentials, minimum and maximum limits) crossed with encodings
(MDC numeric and named units, UCUM, words) and multiples of the limits.

`cases()` returns the corpus; `SITE_LIBRARY` is the drug library it is judged
against. Each case: name, message text, expected verdict ("allow", "alert" or
"block") and, for alerts and blocks, the rule id the decision must name.
"""

SITE_LIBRARY = """
[[drug_library]]
id = "adult-icu"
version = "2026.12-1"
default_care_area = "adult-icu"

[[drug_library.care_area]]
id = "adult-icu"
points_of_care = ["ICU", "MICU"]
weight_min_kg = 30
weight_max_kg = 300

[[drug_library.care_area]]
id = "nicu"
points_of_care = ["NICU"]
weight_min_kg = 0.3
weight_max_kg = 10

[[drug_library.drug]]
names = ["heparin", "HEP", "0409-2720"]
rate_unit = "U/h"
rate_soft_max = 1500
rate_hard_max = 2000
rate_hard_min = 50
dose_unit = "U"
dose_hard_max = 10000
concentration_unit = "U/mL"
concentrations = [10, 50, 100]
concentration_min = 1
concentration_max = 1000
vtbi_max_ml = 1000
duration_max_min = 2880

[[drug_library.drug.care_area]]
id = "nicu"
rate_hard_max = 100
rate_soft_max = 60
rate_hard_min = 1
dose_hard_max = 500

[[drug_library.drug]]
names = ["insulin", "INS"]
rate_unit = "U/h"
rate_soft_max = 15
rate_hard_max = 25
rate_hard_min = 0.1

[[drug_library.drug]]
names = ["propofol", "PROP"]
rate_unit = "mcg/kg/min"
rate_soft_max = 50
rate_hard_max = 80

[[drug_library.drug.care_area]]
id = "nicu"
available = false

[[drug_library.drug]]
names = ["oxytocin", "OXY"]
rate_unit = "mU/min"
rate_soft_max = 20
rate_hard_max = 40

[[drug_library.drug]]
names = ["potassium chloride", "KCL"]
rate_unit = "mEq/h"
rate_soft_max = 10
rate_hard_max = 20

# Base solutions, as many sites' libraries hold them (a text naming one beside
# a drug is the drug, whichever comes first).
[[drug_library.drug]]
names = ["sodium chloride", "NS", "normal saline", "NaCl"]
rate_unit = "mL/h"
rate_hard_max = 1000

[[drug_library.drug]]
names = ["dextrose", "D5W"]
rate_unit = "mL/h"
rate_hard_max = 1000

# A combination epidural under an entry of its own.
[[drug_library.drug]]
names = ["bupivacaine fentanyl", "bupivacaine-fentanyl", "BUPIFENT"]
rate_unit = "mL/h"
rate_hard_max = 15
routes = ["EP"]

[[drug_library.drug]]
names = ["vancomycin", "VANC"]
rate_unit = "mg/h"
rate_hard_max = 2000
dose_unit = "mg"
dose_soft_max = 2000
dose_hard_max = 3000
# Never pushed: a bolus at most as fast as the infusion (a pump's minimum
# bolus time, as a rate).
bolus_rate_soft_max = 1500
bolus_rate_hard_max = 2000

# Bounded by dose only (an intermittent infusion).
[[drug_library.drug]]
names = ["gentamicin", "GENT"]
dose_unit = "mg"
dose_hard_max = 600

# Routes restricted (RXR-1, HL7 table 0162): vincristine is fatal intrathecally.
[[drug_library.drug]]
names = ["vincristine", "VINC"]
dose_unit = "mg"
dose_hard_max = 2
routes = ["IV"]

# A PCA drug (hydromorphone 1 mg/mL): a basal rate, demand doses at least 6
# minutes apart (the lockout), a loading dose, a 100 mL container at most.
[[drug_library.drug]]
names = ["hydromorphone", "HYDM"]
rate_unit = "mg/h"
rate_hard_max = 4
dose_unit = "mg"
dose_hard_max = 3
vtbi_max_ml = 100
pca_lockout_min_minutes = 6
pca_max_per_hour = 8

# Epidural only, but also intrathecal (a spinal) in the NICU: the care area's
# list replaces the drug's.
[[drug_library.drug]]
names = ["bupivacaine", "BUPI"]
rate_unit = "mg/h"
rate_hard_max = 20
routes = ["ep"]

[[drug_library.drug.care_area]]
id = "nicu"
routes = ["EP", "IT"]
"""

# Units as PCD-03 and senders write them: (MDC triplet, UCUM triplet, words).
ML_H = ["265266^MDC_DIM_MILLI_L_PER_HR^MDC", "mL/h^mL/h^UCUM", "mL/h"]
U_H = ["267840^MDC_DIM_X_INTL_UNIT_PER_HR^MDC", "U/h^U/h^UCUM", "units/hour"]
ML = ["263762^MDC_DIM_MILLI_L^MDC", "mL^mL^UCUM", "mL"]
U = ["267616^MDC_DIM_X_INTL_UNIT^MDC", "U^U^UCUM", "units"]
MCG_KG_MIN = ["265619^MDC_DIM_MICRO_G_PER_KG_PER_MIN^MDC", "ug/kg/min^ug/kg/min^UCUM", "mcg/kg/min"]
MU_MIN = ["267826^MDC_DIM_MILLI_INTL_UNIT_PER_MIN^MDC", "mU/min^mU/min^UCUM", "milliunits/min"]
MG = ["263890^MDC_DIM_MILLI_G^MDC", "mg^mg^UCUM", "mg"]
KG = ["263875^MDC_DIM_KILO_G^MDC", "kg^kg^UCUM", "kg"]
MIN_CQ = "264352&MDC_DIM_MIN&MDC"
HR_CQ = "264384&MDC_DIM_HR&MDC"
WEIGHT = "68063^MDC_ATTR_PT_WEIGHT^MDC"


def rxg(**f):
    """An RXG segment with fields set by number (f4=..., f15=...)."""
    n = max(int(k[1:]) for k in f)
    parts = ["RXG"] + [""] * n
    for k, v in f.items():
        parts[int(k[1:])] = v
    return "|".join(parts)


def obx(n, code, value, unit, status="F"):
    return f"OBX|{n}|NM|{code}||{value}|{unit}|||||{status}"


def message(cid, gives, orc="RE", pre=(), post=(), sep="\r", pv1="PV1||I|ICU^1^1", rxr=("RXR|^IV^HL70162",)):
    """gives: list of (rxg segment, [segments after it]); `rxr`: the RXR
    segments after each RXG (the default names IV as text only, read by no
    check unless the drug has `routes`)."""
    segs = [
        f"MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261204031500||RGV^O15^RGV_O15|{cid}|P|2.6",
        "PID|||4711^^^HOSP^MR||Doe^Jane",
        pv1,
        f"ORC|{orc}|{cid}^EHR",
        *pre,
    ]
    for seg, after in gives:
        segs.append(seg)
        segs.extend(rxr)
        segs.extend(after)
    segs.extend(post)
    return sep.join(segs) + sep


def heparin(rate, rate_unit=ML_H[0], strength="25000", s_unit=U[1], volume="250", v_unit=ML[1], vtbi=None, **extra):
    f = dict(f1="1", f4="HEP^heparin^LOCAL", f15=str(rate), f16=rate_unit, f17=strength, f18=s_unit, f23=volume, f24=v_unit)
    if vtbi is not None:
        f.update(f5=str(vtbi), f7=ML[0])
    f.update(extra)
    return rxg(**f)


def insulin(rate, unit=U_H[1], **extra):
    return rxg(f1="1", f4="INS^insulin^LOCAL", f15=str(rate), f16=unit, **extra)


def propofol(rate, unit=MCG_KG_MIN[0], **extra):
    return rxg(f1="1", f4="PROP^propofol^LOCAL", f15=str(rate), f16=unit, **extra)


def oxytocin(rate, unit=MU_MIN[1], **extra):
    return rxg(f1="1", f4="OXY^oxytocin^LOCAL", f15=str(rate), f16=unit, **extra)


def weight(kg="80", unit=KG[0], code=WEIGHT, status="F", n=1):
    return obx(n, code, kg, unit, status)


class Corpus:
    def __init__(self):
        self.items = []

    def add(self, name, text, verdict, rule=None, as_bytes=False):
        """`as_bytes`: `text` stands for bytes, one Latin-1 character each (sent as
        those bytes, not as UTF-8)."""
        assert verdict in ("allow", "alert", "block")
        self.items.append({"name": name, "text": text, "verdict": verdict, "rule": rule, "bytes": as_bytes})


def cases():
    c = Corpus()
    n = iter(range(1, 100000))

    def cid():
        return f"C{next(n):04d}"

    # --- Routine orders that must pass, in every unit encoding ---------------------
    for i, u in enumerate(ML_H):
        # Heparin 25 000 U in 250 mL (100 U/mL) at 10 mL/h with VTBI 250 mL: the
        # regression of issue 16 (the VTBI was read as a 25 000 U dose).
        c.add(f"heparin 1000 U/h in mL/h, VTBI, unit form {i}", message(cid(), [(heparin(10, u, vtbi=250), [])]), "allow")
        c.add(f"heparin 500 U/h in mL/h, unit form {i}", message(cid(), [(heparin(5, u), [])]), "allow")
    for i, u in enumerate(U_H):
        c.add(f"insulin 5 U/h, unit form {i}", message(cid(), [(insulin(5, u), [])]), "allow")
        c.add(f"heparin 1200 U/h direct, unit form {i}", message(cid(), [(rxg(f1="1", f4="HEP^heparin", f15="1200", f16=u), [])]), "allow")
    for i, u in enumerate(MCG_KG_MIN):
        c.add(f"propofol 30 mcg/kg/min with weight, unit form {i}", message(cid(), [(propofol(30, u), [weight()])]), "allow")
    for i, u in enumerate(MU_MIN):
        c.add(f"oxytocin 10 mU/min, unit form {i}", message(cid(), [(oxytocin(10, u), [])]), "allow")
    for i, k in enumerate(KG):
        c.add(f"propofol with weight unit form {i}", message(cid(), [(propofol(25), [weight("70", k)])]), "allow")
    c.add("propofol with weight in grams", message(cid(), [(propofol(25), [weight("70000", "263872^MDC_DIM_X_G^MDC")])]), "allow")
    c.add("propofol with weight coded 188736", message(cid(), [(propofol(25), [weight(code="188736^MDC_MASS_BODY_ACTUAL^MDC")])]), "allow")
    c.add("propofol with weight coded LOINC", message(cid(), [(propofol(25), [weight(code="29463-7^Body weight^LN")])]), "allow")
    c.add("propofol with two agreeing weights", message(cid(), [(propofol(25), [weight("80"), weight("80.0", n=2)])]), "allow")
    c.add("propofol with a wrong weight marked W", message(cid(), [(propofol(25), [weight("40", status="W"), weight("80", n=2)])]), "allow")
    c.add("heparin rate and a consistent OBX rate", message(cid(), [(heparin(10), [obx(1, "157784^MDC_FLOW_FLUID_PUMP^MDC", "10", ML_H[0])])]), "allow")
    c.add("heparin with VTBI in RXG and OBX agreeing", message(cid(), [(heparin(10, vtbi=250), [obx(1, "157884^MDC_VOL_FLUID_TBI^MDC", "250", ML[0])])]), "allow")
    c.add("heparin VTBI over TQ1 duration agreeing with the rate",
          message(cid(), [(heparin(10, vtbi=250), [f"TQ1|1||||||||||||25^{HR_CQ}"])]), "allow")
    c.add("heparin VTBI over a repeated TQ1-13 (2 h 30 min) agreeing",
          message(cid(), [(heparin(100, strength="2500", vtbi=250), [f"TQ1|1||||||||||||2^{HR_CQ}~30^{MIN_CQ}"])]), "allow")
    c.add("heparin concentration OBX agreeing", message(cid(), [(heparin(10), [obx(1, "157760^MDC_CONC_DRUG^MDC", "100", "U/mL^U/mL^UCUM")])]), "allow")
    c.add("vancomycin 1 g over 60 min (intermittent, PCD-03 dose in RXG-15/16)",
          message(cid(), [(rxg(f1="1", f4="VANC^vancomycin", f15="1000", f16=MG[0], f17="5", f18=MG[1], f23="1", f24=ML[1]), [f"TQ1|1||||||||||||60^{MIN_CQ}"])]), "allow")
    c.add("heparin bolus 5000 U (ORC-1 CH)", message(cid(), [(rxg(f1="1", f4="HEP^heparin", f15="5000", f16=U[0]), [])], orc="CH"), "allow")
    # RXG-5 in drug units on an infusion at a rate is the amount to be infused
    # (the bag), not a bolus dose: read as the volume it is.
    for u in U[:2]:
        c.add(f"heparin 10 mL/h with RXG-5 the whole bag 25000 U ({u})",
              message(cid(), [(heparin(10, f5="25000", f7=u), [])]), "allow")
    c.add("heparin 10 mL/h with RXG-5 25000 U but a VTBI OBX of 100 mL",
          message(cid(), [(heparin(10, f5="25000", f7=U[1]),
                           [obx(1, "157872^MDC_VOL_FLUID_TBI^MDC", "100", ML[0])])]), "block", "WG-INF-017")
    c.add("heparin 10 mL/h with RXG-5 5 mg (not the drug's dimension)",
          message(cid(), [(heparin(10, f5="5", f7=MG[1]), [])]), "block", "WG-INF-005")
    c.add("heparin bolus (CH) 25000 U in RXG-5 is a dose above the hard limit",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin", f5="25000", f7=U[1]), [])], orc="CH"), "block", "WG-INF-011")
    # Every part of a coded element that names something names the same thing:
    # the text, the original text (CWE-9) and v2.7's second alternate (CWE-10/11).
    for code in ("HEP^Morphine sulfate^LOCAL", "HEP^HYDROmorphone 1 mg/mL^LOCAL",
                 "HEP^heparin^LOCAL^^^^^^insulin regular", "HEP^heparin^LOCAL^^^^^^^INS^insulin^LOCAL"):
        c.add(f"give code {code}", message(cid(), [(heparin(10, f4=code), [])]), "block", "WG-INF-016")
    c.add("give code with an original text naming the drug",
          message(cid(), [(heparin(10, f4="HEP^heparin^LOCAL^^^^^^Heparin sodium 25,000 units in 250 mL"), [])]), "allow")
    c.add("propofol with a body weight whose original text (CWE-9) says ideal body weight",
          message(cid(), [(propofol(30), [obx(1, "68063^MDC_ATTR_PT_WEIGHT^MDC^^^^^^ideal body weight", "80", KG[0])])]),
          "block", "WG-INF-016")
    c.add("rate unit mL/h coded, U/h in the original text (CWE-9)",
          message(cid(), [(heparin(10, rate_unit="265266^MDC_DIM_MILLI_L_PER_HR^MDC^^^^^^U/h"), [])]), "block", "WG-INF-016")
    # Every statement is checked, whatever limits the drug has.
    gent = dict(f1="1", f4="GENT^gentamicin^LOCAL", f5="400", f7=MG[1])
    c.add("gentamicin 400 mg at 800 mg/h (dose limits only)",
          message(cid(), [(rxg(**gent, f15="800", f16="mg/h^mg/h^UCUM"), [])]), "allow")
    c.add("gentamicin 4000 mg at 8000 mg/h: the dose is above its hard limit",
          message(cid(), [(rxg(**{**gent, "f5": "4000"}, f15="8000", f16="mg/h^mg/h^UCUM"), [])]), "block", "WG-INF-011")
    c.add("gentamicin 400 mg over 30 min stated as 80000 mg/h (no rate limits: still compared)",
          message(cid(), [(rxg(**gent, f15="80000", f16="mg/h^mg/h^UCUM"), [f"TQ1|1||||||||||||30^{MIN_CQ}"])]),
          "block", "WG-INF-017")
    c.add("gentamicin 400 mg with a rate OBX in U/h (not a rate of mg)",
          message(cid(), [(rxg(**gent, f15="800", f16="mg/h^mg/h^UCUM"), [obx(1, "157924^MDC_RATE_DOSE^MDC", "100", U_H[1])])]),
          "block", "WG-INF-017")
    c.add("insulin 5 U/h with an intermittent dose of 1000 U (no dose limits)",
          message(cid(), [(insulin(5), [obx(1, "158023^MDC_DOSE_INTERMITTENT^MDC", "1000", U[1])])]), "block", "WG-INF-009")
    # TQ1-7/8 written to the day say when the order is valid, not a duration.
    c.add("heparin 10 mL/h, VTBI 250 mL, TQ1-7/8 a two-day window written to the day",
          message(cid(), [(heparin(10, vtbi=250), ["TQ1|1||||||20261124|20261126"])]), "allow")
    c.add("TQ1-7/8 written to the day, the end before the start",
          message(cid(), [(heparin(10, vtbi=250), ["TQ1|1||||||20261126|20261124"])]), "block", "WG-INF-008")
    # A pharmacy order (RXE) on a pump route: wardgate reads RXG only, so it
    # refuses what it cannot check instead of passing it unread.
    for seg in ("RXE|^^^20261204||HEP^heparin^LOCAL|25000||U^U^UCUM|||||||||||||||||5000|U/h^U/h^UCUM",
                "RXO|HEP^heparin^LOCAL|25000||U^U^UCUM"):
        i = cid()
        c.add(f"pharmacy order RDE^O11 with {seg[:3]} and no RXG",
              f"MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124031500||RDE^O11^RDE_O11|{i}|P|2.6\r"
              f"PID|||4711^^^HOSP^MR||Doe^Jane\rPV1||I|ICU^1^1\rORC|NW|{i}^EHR\r{seg}\r"
              "RXR|IV^Intravenous^HL70162\r", "block", "WG-INF-002")
    # A byte 0x85 inside a UTF-8 letter (Å is C3 85): data where the message is
    # UTF-8 (declared or not), a NEL where MSH-18 declares ISO 8859.
    c.add("patient named with Å, UTF-8 undeclared",
          message(cid(), [(heparin(10), [])]).replace("Doe^Jane", "Doe^Åsa"), "allow")
    # Undeclared, a Latin-1 reader splitting lines at NEL reads a second give after
    # an Å that ends a note (found by an adversarial review), or cuts a dosing
    # segment short: refused. Declared UTF-8, the same bytes are letters.
    hidden = message(cid(), [(heparin(10), ["NTE|1||Bag label Å" + heparin(4100)])])
    c.add("a second give after an Å in a note, UTF-8 undeclared", hidden, "block", "WG-HL7-P09")
    c.add("heparin with Å in the give code text, UTF-8 undeclared",
          message(cid(), [(heparin(10).replace("HEP^heparin^LOCAL", "HEP^heparin Å^LOCAL"), [])]), "block", "WG-HL7-P09")
    c.add("heparin with Å in the point of care, UTF-8 undeclared",
          message(cid(), [(heparin(10), [])], pv1="PV1||I|ICUÅ^1^1"), "block", "WG-HL7-P09")
    c.add("next of kin named with Å, UTF-8 undeclared",
          message(cid(), [(heparin(10), [])]).replace("Doe^Jane", "Doe^Jane\rNK1|1|Åberg^Åsa"), "allow")
    c.add("patient named with ą (C4 85), UTF-8 undeclared",
          message(cid(), [(heparin(10), [])]).replace("Doe^Jane", "Dąbrowski^Jane"), "allow")
    c.add("patient named with Å, MSH-18 declares ISO 8859-1 (0x85 is NEL there)",
          message(cid(), [(heparin(10), [])]).replace("Doe^Jane", "Doe^Åsa").replace("|P|2.6\r", "|P|2.6||||||8859/1\r", 1),
          "block", "WG-HL7-P09")
    # ORC-1 does not repeat: a second value is a second reading (bolus or not).
    for orc in ("CH~RE", "RE~CH", "RE^CH"):
        c.add(f"heparin with ORC-1 {orc}", message(cid(), [(heparin(10), [])], orc=orc), "block", "WG-INF-015")
    # An order type whose text contradicts its code.
    c.add("heparin with an order type coded clinician-dose, text continuous",
          message(cid(), [(heparin(10), ["OBX|1|ST|0^MDCX_INFUS_ORDER_TYPE^MDC||clinician-dose^continuous"])]),
          "block", "WG-INF-017")
    c.add("heparin loading dose by order type OBX",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin", f15="4000", f16=U[1]), [f"OBX|1|ST|158037^MDC_INFUS_ORDER_STEP_TYPE^MDC||loading-dose"])]), "allow")
    c.add("heparin give code alternate identifier agreeing", message(cid(), [(heparin(10).replace("HEP^heparin^LOCAL", "HEP^heparin^LOCAL^0409-2720^Heparin sodium^NDC"), [])]), "allow")
    c.add("insulin RXG-5 amount per RXG-14 H1", message(cid(), [(rxg(f1="1", f4="INS^insulin", f5="4", f7=U[1], f14="H1"), [])]), "allow")
    # A text naming a second library drug is refused, whatever the words around it
    # ("via separate line"): wardgate cannot tell an instruction from a mixture (an
    # adversarial review: "Insulin 100 units and heparin 1000 units" passed).
    c.add("drug text naming another library drug after the drug",
          message(cid(), [(heparin(10).replace("HEP^heparin^LOCAL", "HEP^Heparin 25,000 units in D5W, vancomycin via separate line^LOCAL"), [])]), "block", "WG-INF-016")
    c.add("escape sequence in the drug text only", message(cid(), [(heparin(10).replace("HEP^heparin^LOCAL", "HEP^heparin \\T\\ saline^LOCAL"), [])]), "allow")
    c.add("different delimiters (# components)", message(cid(), [(heparin(10), [])]).replace("^", "#").replace("MSH|#~\\&", "MSH|#~\\&"), "allow")

    # --- Soft limits and minimum: forwarded with an alert -------------------------------
    c.add("heparin 1800 U/h above soft", message(cid(), [(heparin(18), [])]), "alert", "WG-INF-012")
    c.add("insulin 20 U/h above soft", message(cid(), [(insulin(20), [])]), "alert", "WG-INF-012")
    c.add("propofol 60 above soft", message(cid(), [(propofol(60), [weight()])]), "alert", "WG-INF-012")
    c.add("vancomycin 2500 mg dose above soft",
          message(cid(), [(rxg(f1="1", f4="VANC^vancomycin", f15="2500", f16=MG[1]), [])], orc="CH"), "alert", "WG-INF-013")
    c.add("weight malformed but not needed", message(cid(), [(insulin(5), [weight("eighty")])]), "alert", "WG-INF-022")

    # --- Above the hard limit, by every multiple and in every encoding ---------------
    for k in (1.05, 1.5, 2, 10, 40, 270, 1000):
        for i, u in enumerate(ML_H):
            c.add(f"heparin {k}x hard limit in mL/h form {i}", message(cid(), [(heparin(round(20 * k, 3), u), [])]), "block", "WG-INF-010")
        for i, u in enumerate(U_H):
            c.add(f"insulin {k}x hard limit form {i}", message(cid(), [(insulin(round(25 * k, 3), u), [])]), "block", "WG-INF-010")
        c.add(f"propofol {k}x hard limit", message(cid(), [(propofol(round(80 * k, 3)), [weight()])]), "block", "WG-INF-010")
        c.add(f"oxytocin {k}x hard limit", message(cid(), [(oxytocin(round(40 * k, 3)), [])]), "block", "WG-INF-010")
    c.add("heparin bolus 15000 U above dose hard limit", message(cid(), [(rxg(f1="1", f4="HEP^heparin", f15="15000", f16=U[1]), [])], orc="CH"), "block", "WG-INF-011")
    c.add("heparin 5000 U over 1 min (TQ1): 300000 U/h",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin", f15="5000", f16=U[0]), [f"TQ1|1||||||||||||1^{MIN_CQ}"])]), "block", "WG-INF-010")
    c.add("heparin VTBI 250 mL over 10 min (TQ1): 150000 U/h",
          message(cid(), [(heparin(10, vtbi=250).replace("|10|265266", "||265266"), [f"TQ1|1||||||||||||10^{MIN_CQ}"])]), "block", None)
    c.add("insulin RXG-5 per RXG-14 M1 (per minute): 240 U/h", message(cid(), [(rxg(f1="1", f4="INS^insulin", f5="4", f7=U[1], f14="M1"), [])]), "block", "WG-INF-010")
    c.add("propofol per-kg rate with a 10x light weight in the second give", message(cid(), [(propofol(30), [weight()]), (propofol(800).replace("RXG|1|", "RXG|2|", 1), [])]), "block", "WG-INF-010")
    c.add("two gives, the second above the limit", message(cid(), [(heparin(10), []), (heparin(30, f1="2"), [])]), "block", "WG-INF-010")
    c.add("mega international units exactly as UCUM", message(cid(), [(insulin(1, "M[iU]/h^M[iU]/h^UCUM"), [])]), "block", "WG-INF-010")

    # --- Below the hard minimum --------------------------------------------------------
    for v in ("0.001", "0.01", "0.1"):
        c.add(f"heparin {v} mL/h (under-dosing)", message(cid(), [(heparin(v), [])]), "block", "WG-INF-023")
    c.add("insulin 0.01 U/h", message(cid(), [(insulin("0.01"), [])]), "block", "WG-INF-023")
    c.add("heparin 0 U/h", message(cid(), [(rxg(f1="1", f4="HEP^heparin", f15="0", f16=U_H[1]), [])]), "block", "WG-INF-023")

    # --- Unit case: the magnitude depends on the case -> refused ----------------------
    for spelled in ("MU/h", "MIU/h", "Mu/h", "mu/h", "MU/H", "MIU/HR"):
        c.add(f"insulin 20 {spelled}", message(cid(), [(insulin(20, f"{spelled}^{spelled}^L"), [])]), "block", "WG-INF-014")
        c.add(f"insulin 20 {spelled} as text only", message(cid(), [(insulin(20, f"^{spelled}"), [])]), "block", "WG-INF-014")
    for spelled in ("ML/HR", "ML/H", "Ml/h", "mL/H".upper()):
        c.add(f"heparin 10 {spelled}", message(cid(), [(heparin(10, f"{spelled}^{spelled}^L"), [])]), "block", "WG-INF-014")
    # UCUM's parenthesised and exponent divisions are the slash spellings;
    # `ug/kg.min` is (ug/kg).min to UCUM and per minute to a clinician.
    for spelled in ("ug/(kg.min)", "ug.kg-1.min-1"):
        c.add(f"propofol 30 {spelled}", message(cid(), [(propofol(30, f"{spelled}^{spelled}^UCUM"), [weight()])]), "allow")
        c.add(f"propofol 300 {spelled} (3.75x the hard limit)", message(cid(), [(propofol(300, f"{spelled}^{spelled}^UCUM"), [weight()])]), "block", "WG-INF-010")
    c.add("propofol 30 ug/kg.min", message(cid(), [(propofol(30, "ug/kg.min^ug/kg.min^UCUM"), [weight()])]), "block", "WG-INF-004")
    for spelled in ("MCG/KG/MIN", "Mcg/kg/min"):
        # "mcg" folds to micro, never milli: one reading only.
        c.add(f"propofol 30 {spelled}", message(cid(), [(propofol(30, f"^{spelled}"), [weight()])]), "allow")
    c.add("oxytocin 10 MU/min", message(cid(), [(oxytocin(10, "MU/min^MU/min^L"), [])]), "block", "WG-INF-014")
    c.add("heparin strength in MG-like units 'MU'", message(cid(), [(heparin(10, s_unit="MU^MU^L"), [])]), "block", "WG-INF-014")

    # --- Repetitions in fields that do not repeat ------------------------------------
    for f, v in (("f15", "25~2500"), ("f15", "2500~25"), ("f16", "U/h~mL/h"), ("f4", "HEP^heparin~INS^insulin"),
                 ("f17", "25000~2500"), ("f23", "250~25"), ("f18", "U~mU"), ("f24", "mL~L"), ("f5", "250~25"), ("f7", "mL~L")):
        base = dict(f1="1", f4="HEP^heparin", f5="250", f7="mL", f15="10", f16="mL/h", f17="25000", f18="U", f23="250", f24="mL")
        base[f] = v
        c.add(f"heparin with RXG-{f[1:]} repeated {v!r}", message(cid(), [(rxg(**base), [])]), "block", "WG-INF-015")
    c.add("insulin RXG-16 repeated with identical values", message(cid(), [(insulin(5, "U/h~U/h"), [])]), "block", "WG-INF-015")
    c.add("propofol with the weight value repeated", message(cid(), [(propofol(30), [weight("80~8")])]), "block", None)

    # --- Coded elements whose parts disagree -----------------------------------------
    c.add("MDC code for mL/h with the text U/h", message(cid(), [(heparin(1000, "265266^U/h^MDC"), [])]), "block", "WG-INF-016")
    c.add("UCUM mL/h with MDC name for U/h", message(cid(), [(heparin(10, "mL/h^MDC_DIM_X_INTL_UNIT_PER_HR^MDC"), [])]), "block", "WG-INF-016")
    c.add("alternate identifier names another unit", message(cid(), [(heparin(10, "mL/h^mL/h^UCUM^267840^MDC_DIM_X_INTL_UNIT_PER_HR^MDC"), [])]), "block", "WG-INF-016")
    c.add("heparin code with the text insulin", message(cid(), [(heparin(10).replace("HEP^heparin^LOCAL", "HEP^insulin^LOCAL"), [])]), "block", "WG-INF-016")
    c.add("insulin code with the text heparin", message(cid(), [(insulin(5).replace("INS^insulin^LOCAL", "INS^Heparin sodium^LOCAL"), [])]), "block", "WG-INF-016")
    c.add("unknown code with the text heparin", message(cid(), [(heparin(10).replace("HEP^heparin^LOCAL", "99999^heparin^LOCAL"), [])]), "block", "WG-INF-016")
    c.add("alternate identifier names another drug", message(cid(), [(heparin(10).replace("HEP^heparin^LOCAL", "HEP^heparin^LOCAL^INS^^LOCAL"), [])]), "block", "WG-INF-016")
    c.add("unknown unit identifier with known text", message(cid(), [(heparin(10, "999999^mL/h^MDC"), [])]), "block", "WG-INF-004")
    c.add("weight code with text 'ideal body weight'", message(cid(), [(propofol(30), [weight(code="68063^Ideal body weight^MDC")])]), "block", "WG-INF-016")
    c.add("OBX rate code whose text names VTBI", message(cid(), [(heparin(10), [obx(1, "157784^MDC_VOL_FLUID_TBI^MDC", "10", ML_H[0])])]), "block", "WG-INF-016")

    # --- Patient weight and surface area --------------------------------------------
    c.add("propofol without weight", message(cid(), [(propofol(30), [])]), "block", "WG-INF-006")
    c.add("propofol with only a wrong (W) weight", message(cid(), [(propofol(30), [weight(status="W")])]), "block", "WG-INF-006")
    # Statuses that carry no result (HL7 table 0085): pending, not asked, order
    # detail. With a value they are two readings (none to a reader of OBX-11, a
    # weight to a pump reading OBX-5): refused where the order needs the weight.
    for st in ("I", "N", "O"):
        c.add(f"propofol with only a weight of status {st} (no result) carrying a value",
              message(cid(), [(propofol(30), [weight("80", status=st)])]), "block", "WG-INF-020")
        c.add(f"propofol with a weight of status {st} carrying a value beside a final one",
              message(cid(), [(propofol(25), [weight("40", status=st), weight("80", n=2)])]), "block", "WG-INF-020")
        c.add(f"propofol with an empty weight of status {st} beside a final one",
              message(cid(), [(propofol(25), [weight("", status=st), weight("80", n=2)])]), "allow")
    c.add("propofol with only a deleted (D) weight", message(cid(), [(propofol(30), [weight(status="D")])]), "block", "WG-INF-006")
    c.add("propofol with only an X weight", message(cid(), [(propofol(30), [weight(status="X")])]), "block", "WG-INF-006")
    # Under the give, a mass under an identifier the weight reader does not read
    # is an unread programming quantity (WG-INF-043); before the give, it is no
    # weight, and the per-kg order has none (WG-INF-006).
    for code, value, what in (("^Weight", "80", "an uncoded 'Weight' OBX"),
                              ("8339-4^Birth weight^LN", "3.5", "birth weight (LOINC 8339-4)"),
                              ("^Ideal body weight", "60", "ideal body weight text")):
        c.add(f"propofol with {what} only", message(cid(), [(propofol(30), [obx(1, code, value, KG[1])])]), "block", "WG-INF-043")
        c.add(f"propofol with {what} only, before the give",
              message(cid(), [(propofol(30), [])], pre=[obx(1, code, value, KG[1])]), "block", "WG-INF-006")
    c.add("propofol with two weights that disagree", message(cid(), [(propofol(30), [weight("80"), weight("60", n=2)])]), "block", "WG-INF-021")
    c.add("propofol with weight and LOINC weight that disagree", message(cid(), [(propofol(30), [weight("80"), weight("8", code="29463-7^Body weight^LN", n=2)])]), "block", "WG-INF-021")
    c.add("propofol with a non-numeric weight", message(cid(), [(propofol(30), [weight("eighty")])]), "block", "WG-INF-020")
    c.add("propofol with a weight in cm", message(cid(), [(propofol(30), [weight("80", "263441^MDC_DIM_CENTI_M^MDC")])]), "block", "WG-INF-020")
    c.add("propofol with an implausible weight", message(cid(), [(propofol(30), [weight("8000")])]), "block", "WG-INF-020")
    c.add("propofol with a weight in an unknown unit", message(cid(), [(propofol(30), [weight("80", "stone^stone^L")])]), "block", "WG-INF-020")
    c.add("propofol with a weight without unit", message(cid(), [(propofol(30), [weight("80", "")])]), "block", "WG-INF-020")
    c.add("propofol with a weight in ambiguous 'MG'", message(cid(), [(propofol(30), [weight("80000000", "MG^MG^L")])]), "block", "WG-INF-020")

    # --- Several places state the programme: they must agree -------------------------
    c.add("OBX rate 2x RXG-15", message(cid(), [(heparin(10), [obx(1, "157784^MDC_FLOW_FLUID_PUMP^MDC", "20", ML_H[0])])]), "block", "WG-INF-017")
    c.add("OBX rate half RXG-15", message(cid(), [(heparin(20), [obx(1, "157784^MDC_FLOW_FLUID_PUMP^MDC", "10", ML_H[0])])]), "block", "WG-INF-017")
    c.add("OBX dose rate disagreeing", message(cid(), [(propofol(30), [weight(), obx(2, "157924^MDC_RATE_DOSE^MDC", "300", MCG_KG_MIN[0])])]), "block", None)
    c.add("VTBI and OBX VTBI disagree", message(cid(), [(heparin(10, vtbi=250), [obx(1, "157884^MDC_VOL_FLUID_TBI^MDC", "25", ML[0])])]), "block", "WG-INF-017")
    c.add("VTBI over TQ1 disagrees with the rate", message(cid(), [(heparin(10, vtbi=250), [f"TQ1|1||||||||||||1^{HR_CQ}"])]), "block", None)
    c.add("concentration OBX disagrees with RXG strength", message(cid(), [(heparin(10), [obx(1, "157760^MDC_CONC_DRUG^MDC", "1000", "U/mL^U/mL^UCUM")])]), "block", "WG-INF-017")
    c.add("TQ1 between two RXG", message(cid(), [(heparin(10), [f"TQ1|1||||||||||||1^{HR_CQ}"]), (heparin(10, f1="2"), [])]), "block", "WG-INF-018")
    c.add("RXG-16 already a rate with RXG-14", message(cid(), [(rxg(f1="1", f4="INS^insulin", f5="4", f7="U/h", f14="H1"), [])]), "block", "WG-INF-005")
    c.add("dose in RXG-15 with no library dose limits and no duration", message(cid(), [(rxg(f1="1", f4="INS^insulin", f15="50", f16=U[1]), [])]), "block", "WG-INF-009")
    c.add("bolus of insulin (no dose limits)", message(cid(), [(rxg(f1="1", f4="INS^insulin", f15="50", f16=U[1]), [])], orc="CH"), "block", "WG-INF-009")

    # --- Escapes in clinical values ---------------------------------------------------
    c.add("escaped digit in the rate", message(cid(), [(heparin("\\X31\\0"), [])]), "block", "WG-INF-019")
    c.add("escaped unit", message(cid(), [(heparin(10, "\\X6D\\L/h"), [])]), "block", "WG-INF-019")
    c.add("escaped drug identifier", message(cid(), [(heparin(10).replace("HEP^heparin^LOCAL", "\\X48\\EP^heparin^LOCAL"), [])]), "block", "WG-INF-019")
    c.add("escaped strength", message(cid(), [(heparin(10, strength="2\\X35\\000"), [])]), "block", "WG-INF-019")
    c.add("component in the rate", message(cid(), [(heparin("10^20"), [])]), "block", "WG-INF-008")
    c.add("exponent in the rate", message(cid(), [(heparin("1e1"), [])]), "block", "WG-INF-008")
    c.add("negative rate", message(cid(), [(heparin("-10"), [])]), "block", "WG-INF-008")
    c.add("comma decimal rate", message(cid(), [(heparin("10,5"), [])]), "block", "WG-INF-008")

    # --- Parser differentials: refused before any clinical reading ------------------
    diff = heparin(10)
    for ch, name in (("\x0c", "form feed"), ("\x0b", "vertical tab"), ("\x1e", "record separator"), ("\x1d", "group separator"),
                     ("\x1f", "unit separator"), ("\x00", "NUL"), ("\x7f", "DEL"), ("\u0085", "NEL"), ("\u2028", "U+2028"), ("\u2029", "U+2029")):
        c.add(f"{name} inside a field", message(cid(), [(diff, [])], post=[f"NTE|1||note{ch}RXG|1||HEP^heparin|||||||||||2000|U/h"]), "block", "WG-HL7-P09")
        c.add(f"{name} inside the rate", message(cid(), [(heparin(f"1{ch}0"), [])]), "block", "WG-HL7-P09")
    c.add("second MSH in one frame", message(cid(), [(diff, [])]) + "MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|2026||RGV^O15|X2|P|2.6\r", "block", "WG-HL7-P10")
    c.add("batch header in one frame", "BHS|^~\\&|EHR\r" + message(cid(), [(diff, [])]), "block", None)
    c.add("FHS after MSH in one frame", message(cid(), [(diff, [])]) + "FHS|^~\\&|EHR\r", "block", "WG-HL7-P10")
    c.add("mixed CR and LF terminators", message(cid(), [(diff, [])]).replace("\rRXR", "\nRXR"), "block", "WG-HL7-P11")
    c.add("mixed CR and CRLF terminators", message(cid(), [(diff, [])]).replace("\rRXR", "\r\nRXR"), "block", "WG-HL7-P11")

    # --- Care areas, concentrations, VTBI and duration (the pump's DERS) ---------
    nicu = "PV1||I|NICU^2^1"
    c.add("NICU heparin 50 U/h for a 3 kg baby", message(cid(), [(rxg(f1="1", f4="HEP^heparin", f15="50", f16=U_H[1]), [weight("3")])], pv1=nicu), "allow")
    c.add("NICU heparin 150 U/h (adult-safe, above the NICU limit)",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin", f15="150", f16=U_H[1]), [weight("3")])], pv1=nicu), "block", "WG-INF-010")
    c.add("NICU heparin 80 U/h above the NICU soft limit",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin", f15="80", f16=U_H[1]), [weight("3")])], pv1=nicu), "alert", "WG-INF-012")
    c.add("NICU heparin bolus 1000 U above the NICU dose limit",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin", f15="1000", f16=U[1]), [weight("3")])], orc="CH", pv1=nicu), "block", "WG-INF-011")
    c.add("NICU propofol (not available in the NICU)", message(cid(), [(propofol(10), [weight("3")])], pv1=nicu), "block", "WG-INF-033")
    c.add("NICU order with an adult weight", message(cid(), [(rxg(f1="1", f4="HEP^heparin", f15="50", f16=U_H[1]), [weight("80")])], pv1=nicu), "block", "WG-INF-031")
    c.add("ICU order with a 3 kg weight", message(cid(), [(propofol(10), [weight("3")])]), "block", "WG-INF-031")
    c.add("unknown point of care falls back to the default care area", message(cid(), [(heparin(10), [])], pv1="PV1||I|ZZZ^1^1"), "allow")
    c.add("no PV1 falls back to the default care area", message(cid(), [(heparin(10), [])], pv1="NTE|1||no visit"), "allow")
    c.add("PV1-3 repeated", message(cid(), [(heparin(10), [])], pv1="PV1||I|ICU^1^1~NICU^1^1"), "block", "WG-INF-015")
    c.add("heparin 2500 U/mL above the concentration limit", message(cid(), [(heparin(1, volume="10"), [])]), "block", "WG-INF-027")
    c.add("heparin 0.5 U/mL below the concentration limit", message(cid(), [(heparin(10, strength="125", volume="250"), [])]), "block", None)
    c.add("heparin 125 U/mL, not a standard concentration", message(cid(), [(heparin(10, volume="200"), [])]), "alert", "WG-INF-028")
    c.add("heparin VTBI 2000 mL above the VTBI limit", message(cid(), [(heparin(10, vtbi=2000), [])]), "block", "WG-INF-029")
    c.add("heparin 50 h (3000 min) above the duration limit",
          message(cid(), [(heparin(10, vtbi=500), [f"TQ1|1||||||||||||3000^{MIN_CQ}"])]), "block", "WG-INF-030")

    # The volume limit holds for what the programme implies (found by an
    # adversarial review): a rate for a duration is a volume.
    c.add("heparin 150 mL/h (10 U/mL) for 47 h infuses 7050 mL, above the VTBI limit",
          message(cid(), [(heparin(150, strength="10000", volume="1000"), [f"TQ1|1||||||||||||47^{HR_CQ}"])]), "block", "WG-INF-029")
    c.add("heparin 1000 U/h (100 U/mL) for 49 h infuses 490 mL, a stated duration above the limit",
          message(cid(), [(heparin(1000, U_H[1]), [f"TQ1|1||||||||||||49^{HR_CQ}"])]), "block", "WG-INF-030")
    c.add("heparin 15 U/kg/h (100 U/mL, 80 kg) for 47 h infuses 564 mL (within both limits)",
          message(cid(), [(heparin(15, "U/kg/h^U/kg/h^UCUM"), [weight("80"), f"TQ1|1||||||||||||47^{HR_CQ}"])]), "allow")
    c.add("heparin 15 U/kg/h (10 U/mL, 80 kg) for 10 h infuses 1200 mL, above the VTBI limit",
          message(cid(), [(heparin(15, "U/kg/h^U/kg/h^UCUM", strength="10000", volume="1000"), [weight("80"), f"TQ1|1||||||||||||10^{HR_CQ}"])]), "block", "WG-INF-029")
    c.add("heparin 1000 U/h (100 U/mL) for 47 h infuses 470 mL (within both limits)",
          message(cid(), [(heparin(1000, U_H[1]), [f"TQ1|1||||||||||||47^{HR_CQ}"])]), "allow")

    # --- Found by an adversarial review of this build (regressions) -------------
    hep = lambda **f: rxg(f1="1", f4="HEP^heparin", **f)  # noqa: E731
    # Since session 35 a dose beside a continuous rate is judged with it (the
    # heparin nomogram): the rate against the rate limits.
    c.add("a clinician-dose OBX does not turn a 100 mL/h infusion into a bolus",
          message(cid(), [(heparin(100), [obx(1, "158019^MDC_DOSE_CLINICIAN^MDC", "1", U[1])])]), "block", "WG-INF-010")
    c.add("ORC-1 CH with a rate and no duration",
          message(cid(), [(heparin(100), [])], orc="CH"), "block", "WG-INF-038")
    c.add("CH bolus: 5 U in RXG-15 but 5000 U/h for 24 h in the OBX",
          message(cid(), [(hep(f15="5", f16=U[1]), [obx(1, "157924^MDC_RATE_DOSE^MDC", "5000", U_H[1]), f"TQ1|1||||||||||||24^{HR_CQ}"])], orc="CH"),
          "block", "WG-INF-017")
    c.add("CH bolus: RXG-5 500 mL and RXG-15 100 mL disagree",
          message(cid(), [(heparin(0).replace("|0|265266^MDC_DIM_MILLI_L_PER_HR^MDC|", "|100|263762^MDC_DIM_MILLI_L^MDC|").replace("HEP^heparin^LOCAL|", "HEP^heparin^LOCAL|500||mL", 1), [])], orc="CH"),
          "block", None)
    # A 0 bounds nothing: many pumps read a VTBI, dose or duration of 0 as
    # "not set" and run the rate until the container is empty (found by an
    # adversarial review, session 33: each passed as a 0 U dose).
    c.add("CH bolus 999 mL/h with RXG-5 VTBI 0 mL",
          message(cid(), [(heparin(999, vtbi=0), [])], orc="CH"), "block", "WG-INF-038")
    c.add("CH bolus 999 mL/h with an OBX VTBI of 0 mL",
          message(cid(), [(heparin(999), [obx(1, "157884^MDC_VOL_FLUID_TBI^MDC", "0", ML[0])])], orc="CH"), "block", "WG-INF-038")
    c.add("CH bolus: a dose of 0 U in RXG-15/16 and an OBX flow of 999 mL/h",
          message(cid(), [(hep(f15="0", f16=U[1], f17="25000", f18=U[1], f23="250", f24=ML[1]), [obx(1, "157784^MDC_FLOW_FLUID_PUMP^MDC", "999", ML_H[0])])], orc="CH"),
          "block", "WG-INF-038")
    c.add("CH bolus 999 mL/h over a TQ1-13 duration of 0 min",
          message(cid(), [(heparin(999), [f"TQ1|1||||||||||||0^{MIN_CQ}"])], orc="CH"), "block", "WG-INF-008")
    c.add("CH bolus: VTBI 5 mL at an OBX flow of 999 mL/h (a 500 U bolus)",
          message(cid(), [(hep(f5="5", f7=ML[0], f17="25000", f18=U[1], f23="250", f24=ML[1]), [obx(1, "157784^MDC_FLOW_FLUID_PUMP^MDC", "999", ML_H[0])])], orc="CH"),
          "allow")
    # OBX-11 read as W (wrong) by some receivers and not by others: the first
    # repetition, escapes decoded, the case folded, the first component
    # (found by an adversarial review, session 33: each bounded the order for
    # wardgate and nothing for a pump that drops a parameter marked W).
    for status in ("W~F", "F~W", "\\X57\\", "w", "W^x", "d", "W&F", " W", "W ", " D"):
        c.add(f"CH bolus 999 mL/h bounded only by an OBX VTBI 10 mL marked {status!r}",
              message(cid(), [(heparin(999), [obx(1, "157884^MDC_VOL_FLUID_TBI^MDC", "10", ML[0], status)])], orc="CH"),
              "block", "WG-INF-017")
        c.add(f"propofol with its only weight marked {status!r}",
              message(cid(), [(propofol(30), [weight(status=status)])]), "block", "WG-INF-020")
    c.add("CH bolus 999 mL/h with an OBX VTBI 10 mL marked 'f' (final to every reader)",
          message(cid(), [(hep(f17="25000", f18=U[1], f23="250", f24=ML[1]),
                           [obx(1, "157784^MDC_FLOW_FLUID_PUMP^MDC", "999", ML_H[0]),
                            obx(2, "157884^MDC_VOL_FLUID_TBI^MDC", "10", ML[0], "f")])], orc="CH"), "allow")
    # An amount to be infused in the drug's units beside a rate in them, no
    # concentration: routine (found by an adversarial review, session 33:
    # refused as a unit error).
    c.add("insulin 5 U/h with RXG-5/7 100 U to be infused, no concentration",
          message(cid(), [(insulin(5, f5="100", f7=U[1]), [])]), "allow")
    c.add("heparin 1000 U/h with RXG-5/7 25 000 U (MDC unit), no concentration",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin^LOCAL", f5="25000", f7=U[0], f15="1000", f16=U_H[1]), [])]), "allow")
    c.add("insulin 5 U/h with a VTBI of 100 mL, no concentration (the pump's own)",
          message(cid(), [(insulin(5, f5="100", f7=ML[1]), [])]), "allow")
    # The give barcode (RXG-25) naming another drug than RXG-4 (found by an
    # adversarial review, session 33).
    c.add("heparin 1000 U/h with RXG-25 naming insulin",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin^LOCAL", f15="1000", f16=U_H[1], f25="INS^insulin^LOCAL"), [])]),
          "block", "WG-INF-016")
    for barcode in ("IN\\X53\\ULIN", "INS&x", "~~~~~~~~INS^insulin^LOCAL"):
        c.add(f"heparin 1000 U/h with RXG-25 {barcode!r} naming insulin",
              message(cid(), [(rxg(f1="1", f4="HEP^heparin^LOCAL", f15="1000", f16=U_H[1], f25=barcode), [])]),
              "block", "WG-INF-016")
    c.add("heparin 1000 U/h with RXG-25 naming heparin",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin^LOCAL", f15="1000", f16=U_H[1], f25="HEP^heparin^LOCAL"), [])]), "allow")
    c.add("heparin 1000 U/h with an RXG-25 barcode no library drug is named by",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin^LOCAL", f15="1000", f16=U_H[1], f25="0312345678906^^GS1"), [])]), "allow")
    # Its text naming another drug among its words (found by a review,
    # session 34: only whole names had been looked up).
    for barcode in ("^Insulin regular", "^Insulin glargine", "0312345678906^Potassium chloride 20 mEq^GS1",
                    "^heparin then insulin", "^^^^Insulin regular"):
        c.add(f"heparin 1000 U/h with RXG-25 text {barcode!r} naming another drug",
              message(cid(), [(rxg(f1="1", f4="HEP^heparin^LOCAL", f15="1000", f16=U_H[1], f25=barcode), [])]),
              "block", "WG-INF-016")
    for barcode in ("0312345678906^Heparin sodium 25,000 units in 0.45% sodium chloride 250 mL^GS1",
                    "^HEPARIN 100 units/mL", "00409272030^heparin (porcine)"):
        c.add(f"heparin 1000 U/h with RXG-25 text {barcode!r} naming heparin",
              message(cid(), [(rxg(f1="1", f4="HEP^heparin^LOCAL", f15="1000", f16=U_H[1], f25=barcode), [])]), "allow")
    # A bolus's speed where the library bounds it (`bolus_rate_*`: vancomycin
    # here, heparin not). Found by an adversarial review, session 33: ORC-1 CH
    # turned a refused 60 000 mg/h into an allowed 1000 mg bolus.
    vanc = lambda **f: rxg(f1="1", f4="VANC^vancomycin", **f)  # noqa: E731
    c.add("vancomycin CH bolus 1000 mg over 1 min (60 000 mg/h)",
          message(cid(), [(vanc(f15="1000", f16=MG[0]), [f"TQ1|1||||||||||||1^{MIN_CQ}"])], orc="CH"), "block", "WG-INF-010")
    c.add("vancomycin CH bolus 1000 mg with an OBX dose rate of 60 000 mg/h",
          message(cid(), [(vanc(f15="1000", f16=MG[0]), [obx(1, "157924^MDC_RATE_DOSE^MDC", "60000", "mg/h^mg/h^UCUM"), f"TQ1|1||||||||||||1^{MIN_CQ}"])], orc="CH"),
          "block", "WG-INF-010")
    c.add("vancomycin CH bolus of 200 mL of 5 mg/mL at 999 mL/h (4995 mg/h)",
          message(cid(), [(vanc(f5="200", f7=ML[0], f15="999", f16=ML_H[0], f17="1000", f18=MG[1], f23="200", f24=ML[1]), [])], orc="CH"),
          "block", "WG-INF-010")
    c.add("vancomycin CH bolus 1000 mg over 60 min (1000 mg/h)",
          message(cid(), [(vanc(f15="1000", f16=MG[0]), [f"TQ1|1||||||||||||60^{MIN_CQ}"])], orc="CH"), "allow")
    c.add("vancomycin CH bolus 1000 mg over 36 min (1667 mg/h, above the soft bolus rate)",
          message(cid(), [(vanc(f15="1000", f16=MG[0]), [f"TQ1|1||||||||||||36^{MIN_CQ}"])], orc="CH"), "alert", "WG-INF-012")
    # A repeated TQ1-13, which PCD-03 adds up, read by a parser keeping the
    # first repetition (found by a second review, session 33: a bolus over
    # `1 min~59 min` was judged at 60 min). A parser keeping the last is not
    # assumed: `2 h~30 min` is PCD-03's own way to write 2.5 h.
    tq = f"TQ1|1||||||||||||1^{MIN_CQ}~59^{MIN_CQ}"
    c.add("vancomycin CH bolus 1000 mg over TQ1-13 1 min~59 min",
          message(cid(), [(vanc(f15="1000", f16=MG[0]), [tq])], orc="CH"), "block", None)
    c.add("vancomycin 1000 mg intermittent over TQ1-13 1 min~59 min",
          message(cid(), [(vanc(f15="1000", f16=MG[0]), [tq])]), "block", "WG-INF-010")
    c.add("vancomycin CH bolus 1000 mg over TQ1-13 1 h~30 min (PCD-03's 90 min; 1000 mg/h read by the first)",
          message(cid(), [(vanc(f15="1000", f16=MG[0]), [f"TQ1|1||||||||||||1^{HR_CQ}~30^{MIN_CQ}"])], orc="CH"), "allow")
    c.add("heparin CH bolus 5000 U over 1 min (no bolus rate limit: judged by its dose)",
          message(cid(), [(hep(f15="5000", f16=U[1]), [f"TQ1|1||||||||||||1^{MIN_CQ}"])], orc="CH"), "allow")
    c.add("IHE bolus rate + duration: 100 mL/h for 5 min (about 833 U)",
          message(cid(), [(heparin(100), [f"TQ1|1||||||||||||5^{MIN_CQ}", "OBX|1|ST|0^MDCX_INFUS_ORDER_TYPE^MDC||clinician-dose"])], orc="CH"), "allow")
    for poc in ("NICU&&", "NICU&1.2.3&ISO"):
        c.add(f"point of care {poc!r} is the NICU",
              message(cid(), [(hep(f15="1500", f16=U_H[1]), [weight("3")])], pv1=f"PV1||I|{poc}^1^1"), "block", "WG-INF-010")
    c.add("two PV1 segments", message(cid(), [(heparin(10), [])], pre=["PV1||I|NICU^1^1"]), "block", "WG-INF-034")
    c.add("two concentration OBX that disagree",
          message(cid(), [(hep(f15="30", f16=ML_H[1]), [obx(1, "157760^MDC_CONC_DRUG^MDC", "50", "U/mL"), obx(2, "157760^MDC_CONC_DRUG^MDC", "500", "U/mL")])]),
          "block", "WG-INF-017")
    c.add("TQ1-13 repeated: 1 min read alone is 300000 U/h",
          message(cid(), [(heparin(10, vtbi=50).replace("|10|265266^MDC_DIM_MILLI_L_PER_HR^MDC|", "||265266^MDC_DIM_MILLI_L_PER_HR^MDC|"), [f"TQ1|1||||||||||||1^{MIN_CQ}~1000^{MIN_CQ}"])]),
          "block", "WG-INF-010")
    c.add("TQ1-7/8 with different time zone offsets",
          message(cid(), [(heparin(10, vtbi=20).replace("|10|265266^MDC_DIM_MILLI_L_PER_HR^MDC|", "||265266^MDC_DIM_MILLI_L_PER_HR^MDC|"), ["TQ1|1||||||202611241000+0000|202611241001-0100"])]),
          "block", "WG-INF-035")
    c.add("programming OBX before the RXG",
          message(cid(), [(heparin(30), [])], pre=[obx(1, "157784^MDC_FLOW_FLUID_PUMP^MDC", "999", ML_H[0])]), "block", "WG-INF-036")
    c.add("programming OBX after a second ORC",
          message(cid(), [(heparin(30), [])], post=["ORC|RE|X^EHR", obx(1, "157784^MDC_FLOW_FLUID_PUMP^MDC", "999", ML_H[0])]), "block", "WG-INF-036")
    c.add("OBX-3 code with a sub-component",
          message(cid(), [(heparin(3), [obx(1, "157784&MDC^^MDC", "999", ML_H[0])])]), "block", "WG-INF-017")
    c.add("OBX-3 name in lower case",
          message(cid(), [(heparin(3), [obx(1, "^mdc_flow_fluid_pump^MDC", "999", ML_H[0])])]), "block", "WG-INF-017")
    c.add("programming OBX marked wrong (W)",
          message(cid(), [(heparin(3), [obx(1, "157784^MDC_FLOW_FLUID_PUMP^MDC", "999", ML_H[0], status="W")])]), "block", "WG-INF-017")

    # --- Found by a second adversarial review (regressions) --------------------
    c.add("TQ1-13 of 1 h and a 31-minute TQ1-7/8 window do not agree",
          message(cid(), [(rxg(f1="1", f4="VANC^vancomycin", f15="2000", f16=MG[1]), ["TQ1|1||||||20261124100000|20261124103100|||||1^h&h&UCUM"])]),
          "block", "WG-INF-017")
    c.add("an unreadable strength volume unit is refused even for a U/h rate",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin", f15="1500", f16=U_H[1], f17="500000", f18=U[1], f23="50", f24="bags"), [])]),
          "block", "WG-INF-004")
    c.add("an ambiguous strength volume unit is refused even for a U/h rate",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin", f15="1500", f16=U_H[1], f17="500000", f18=U[1], f23="50", f24="ML"), [])]),
          "block", "WG-INF-014")
    c.add("a VTBI per kg is not a volume to be infused",
          message(cid(), [(heparin(30), [obx(1, "157884^MDC_VOL_FLUID_TBI^MDC", "20", "mL/kg"), weight("80", n=2)])]),
          "block", "WG-INF-005")

    # --- Found by a third adversarial review (regressions) ---------------------
    c.add("a bolus whose dose and rate are both in OBX, with no duration",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin"), [obx(1, "158019^MDC_DOSE_CLINICIAN^MDC", "1", U[1]), obx(2, "157924^MDC_RATE_DOSE^MDC", "5000", U_H[1])])]),
          "block", "WG-INF-010")
    c.add("an OBX concentration whose identifier is a deci-prefixed code",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin", f15="1500", f16=U_H[1], f17="25000", f18=U[1], f23="500", f24=ML[1]), [obx(1, "157760^MDC_CONC_DRUG^MDC", "50", "267760^U/mL^MDC")])]),
          "block", "WG-INF-004")
    c.add("mg/kg/m2/h is no unit",
          message(cid(), [(rxg(f1="1", f4="VANC^vancomycin", f15="10", f16="mg/kg/m2/h^mg/kg/m2/h^UCUM"), [weight("80"), obx(2, "188744^MDC_AREA_BODY_SURF_ACTUAL^MDC", "2", "m2^m2^UCUM")])]),
          "block", "WG-INF-004")
    c.add("IHE bolus dose + rate: 4000 U in RXG-15/16, rate in the OBX",
          message(cid(), [(heparin(0).replace("|0|265266^MDC_DIM_MILLI_L_PER_HR^MDC|", "|4000|U^U^UCUM|"), [obx(1, "157784^MDC_FLOW_FLUID_PUMP^MDC", "100", ML_H[0])])], orc="CH"),
          "allow")

    # --- Found by a fourth adversarial review (regressions) --------------------
    def before_orc(text, seg):
        return text.replace("ORC|", seg + "\rORC|", 1)

    hep5000 = rxg(f1="1", f4="HEP^heparin^LOCAL", f15="5000", f16=U[1])
    for where, tq1 in [("TQ1-13 1 min", f"TQ1|1||||||||||||1^{MIN_CQ}"),
                       ("TQ1-6 1 min", f"TQ1|1|||||1^{MIN_CQ}"),
                       ("TQ1-7/8 one minute apart", "TQ1|1||||||202612040800|202612040801")]:
        c.add(f"heparin 5000 U with a {where} placed before ORC",
              before_orc(message(cid(), [(hep5000, [])]), tq1), "block", "WG-INF-036")
    c.add("heparin 5000 U with a TQ1 placed before PID",
          message(cid(), [(hep5000, [])]).replace("PID|", f"TQ1|1||||||||||||1^{MIN_CQ}\rPID|", 1), "block", "WG-INF-036")
    c.add("heparin 5000 U with a TQ1 after a trailing ORC",
          message(cid(), [(hep5000, [])], post=["ORC|RE|X^EHR", f"TQ1|1||||||||||||1^{MIN_CQ}"]), "block", "WG-INF-036")
    c.add("vancomycin 1000 mg with a 1-minute TQ1 before ORC",
          before_orc(message(cid(), [(rxg(f1="1", f4="VANC^vancomycin", f15="1000", f16=MG[1]), [])]), f"TQ1|1||||||||||||1^{MIN_CQ}"),
          "block", "WG-INF-036")
    c.add("a TQ1 with no duration before ORC is no programme",
          before_orc(message(cid(), [(heparin(10), [])]), "TQ1|1"), "allow")
    bag_bolus = rxg(f1="1", f4="HEP^heparin^LOCAL", f5="25000", f7=U[1], f15="10", f16=ML_H[0], f17="25000", f18=U[1], f23="250", f24=ML[1])
    c.add("heparin bag of 25000 U at 10 mL/h (ORC-1 RE) is routine",
          message(cid(), [(bag_bolus, [])]), "allow")
    for orc1 in ("CH&", "CH&RE", "\\H\\CH\\N\\", "ch", " CH", "CH "):
        c.add(f"ORC-1 {orc1!r} is not one order control code",
              message(cid(), [(bag_bolus, [])], orc=orc1), "block", "WG-INF-039")
    c.add("order type with text clinician-dose and no code",
          message(cid(), [(bag_bolus, ["OBX|1|ST|158037^MDC_INFUS_ORDER_STEP_TYPE^MDC||^clinician-dose"])]), "block", "WG-INF-039")
    c.add("order type with an alternate text and no code",
          message(cid(), [(heparin(10), ["OBX|1|ST|158037^MDC_INFUS_ORDER_STEP_TYPE^MDC||^^^^loading-dose"])]), "block", "WG-INF-039")
    for code in ("0157784", "157784.0", "2::26712", "2::157784"):
        c.add(f"OBX-3 rate code written {code} disagreeing with RXG",
              message(cid(), [(heparin(10), [obx(1, f"{code}^^MDC", "300", ML_H[0])])]), "block", "WG-INF-017")
    c.add("OBX-3 rate code written 0157784 agreeing with RXG",
          message(cid(), [(heparin(10), [obx(1, "0157784^^MDC", "10", ML_H[0])])]), "allow")
    c.add("TQ1-7/8 written to the hour, agreeing with VTBI over rate",
          message(cid(), [(heparin(125, strength="2500", vtbi=250), ["TQ1|1||||||2026120412|2026120414"])]), "allow")
    # Found by an adversarial review: ORC-1 CH (a bolus) and an order type
    # saying continuous: a receiver following the order type runs the rate.
    cont = "OBX|1|ST|158037^MDC_INFUS_ORDER_STEP_TYPE^MDC||continuous||||||F"
    big6 = rxg(f1="1", f4="HEP^heparin^LOCAL", f15="100000", f16=U_H[0], f17="25000", f18=U[0], f23="250", f24=ML[0])
    c.add("ORC-1 CH with an order type saying continuous (100 000 U/h for 6 min)",
          message(cid(), [(big6, [f"TQ1|1||||||||||||6^{MIN_CQ}", cont])], orc="CH"), "block", "WG-INF-039")
    # A loading dose beside a continuous infusion whose order type says so:
    # the heparin nomogram, its rate and its dose each within their limits.
    c.add("a loading dose parameter with an order type saying continuous",
          message(cid(), [(heparin(10), [cont.replace("OBX|1|", "OBX|2|"), obx(1, "158018^MDC_DOSE_LOADING^MDC", "1000", U[1])])]), "allow")
    c.add("a loading dose of 20 000 U beside a continuous infusion (above the dose limit)",
          message(cid(), [(heparin(10), [obx(1, "158018^MDC_DOSE_LOADING^MDC", "20000", U[1])])]), "block", "WG-INF-011")
    c.add("heparin nomogram: 80 U/kg loading, then 18 U/kg/h (80 kg)",
          message(cid(), [(heparin(18, "U/kg/h^U/kg/h^UCUM"), [weight("80"), obx(2, "158018^MDC_DOSE_LOADING^MDC", "80", "U/kg^U/kg^UCUM")])]), "allow")
    c.add("an order type saying continuous on a continuous infusion (ORC-1 NW)",
          message(cid(), [(heparin(10), [cont])], orc="NW"), "allow")
    # Found by a third adversarial review: a repeated start or end, and one
    # end to the day and the other to the hour.
    c.add("TQ1-7 repeated (6 h or 33 days)",
          message(cid(), [(heparin(150, strength="10000", volume="1000"), ["TQ1|1||||||2026120410~2026110110|2026120416"])]), "block", "WG-INF-015")
    c.add("TQ1-8 repeated",
          message(cid(), [(heparin(150, strength="10000", volume="1000"), ["TQ1|1||||||2026120410|2026120416~2027010116"])]), "block", "WG-INF-015")
    c.add("TQ1-7 to the day, TQ1-8 to the hour",
          message(cid(), [(heparin(150, strength="10000", volume="1000"), ["TQ1|1||||||20261204|2026120610"])]), "block", "WG-INF-035")
    c.add("TQ1-7 to the hour, TQ1-8 to the day",
          message(cid(), [(heparin(10), ["TQ1|1||||||2026120410|20261207"])]), "block", "WG-INF-035")
    c.add("heparin 1000 U/h for 6 h with no concentration (600 mL at the library's lowest)",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin^LOCAL", f15="1000", f16=U_H[1]), [f"TQ1|1||||||||||||6^{HR_CQ}"])]), "allow")
    # Found by a fourth adversarial review: timing read more than one way.
    h48 = f"TQ1|1||||||||||||48^{HR_CQ}"
    slow = heparin(5, strength="10000", volume="1000")
    fast = heparin(150, strength="10000", volume="1000").replace("RXG|1|", "RXG|2|", 1)
    c.add("the order's 48 h timing before two gives (a receiver times both with it)",
          message(cid(), [(slow, []), (fast, [])], pre=(h48,)), "block", "WG-INF-018")
    c.add("two TQ1 chained by TQ1-12 S (6 h then 6 h)",
          message(cid(), [(heparin(150, strength="10000", volume="1000"), [f"TQ1|1|||||||||||S|6^{HR_CQ}", f"TQ1|2||||||||||||6^{HR_CQ}"])]), "block", "WG-INF-042")
    c.add("a TQ2 cycle repeating a bolus five times",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin^LOCAL", f15="5000", f16=U[1]), ["TQ2|1|S||||ES|*|6^h|5"])], orc="CH"), "block", "WG-INF-042")
    c.add("TQ1-5 with four relative times (four doses)",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin^LOCAL", f15="5000", f16=U[1]), [f"TQ1|1||||0^{HR_CQ}~6^{HR_CQ}~12^{HR_CQ}~18^{HR_CQ}"])], orc="CH"), "block", "WG-INF-042")
    c.add("RXG-3 (TQ) quantity 3 on a bolus",
          message(cid(), [(rxg(f1="1", f3="3", f4="HEP^heparin^LOCAL", f15="5000", f16=U[1]), [])], orc="CH"), "block", "WG-INF-041")
    c.add("TQ1-7 with an empty second repetition (one value)",
          message(cid(), [(heparin(10), ["TQ1|1||||||202612041000~|202612041600"])]), "allow")
    c.add("TQ1-2 quantity written 1.0",
          message(cid(), [(heparin(10), ["TQ1|1|1.0"])]), "allow")
    c.add("TQ1-3 repeat pattern ONCE^Once",
          message(cid(), [(heparin(10), ["TQ1|1||ONCE^Once"])]), "allow")
    # Found by an adversarial review: a window written to the hour was read as
    # no duration, so the VTBI limit (rate x duration) and the duration limit
    # were skipped.
    c.add("heparin 150 mL/h (10 U/mL) from 10:00 to 10:00 two days later (TQ1-7/8 to the hour): 7200 mL",
          message(cid(), [(heparin(150, strength="10000", volume="1000"), ["TQ1|1||||||2026120410|2026120610"])]), "block", "WG-INF-029")
    c.add("heparin 10 mL/h (100 U/mL) from 10:00 one day to 11:00 three days later (49 h, to the hour)",
          message(cid(), [(heparin(10), ["TQ1|1||||||2026120410+0000|2026120611+0000"])]), "block", "WG-INF-030")
    c.add("heparin 10 mL/h (100 U/mL) for 24 h written to the hour (240 mL)",
          message(cid(), [(heparin(10), ["TQ1|1||||||2026120410|2026120510"])]), "allow")
    c.add("heparin 10 mL/h from the hour to a minute (TQ1-7 to the hour, TQ1-8 to the minute)",
          message(cid(), [(heparin(10), ["TQ1|1||||||2026120410|202612051030"])]), "allow")
    c.add("heparin 150 mL/h (10 U/mL) valid from one day to the next (written to the day: a validity window)",
          message(cid(), [(heparin(150, strength="10000", volume="1000"), ["TQ1|1||||||20261204|20261206"])]), "allow")

    # --- Found by a fifth adversarial review (regressions) ---------------------
    hep5000_tq = lambda tq: rxg(f1="1", f3=tq, f4="HEP^heparin^LOCAL", f15="5000", f16=U[1])  # noqa: E731
    for tq, what in (("1^^M1", "duration 1 min"), ("1^Q1H", "interval Q1H"), ("1^^^20261204080000^20261204080100", "start and end a minute apart"),
                     ("1^^^^^^^^^^1^min", "occurrence duration"), ("1^^^^^^^^^^^3", "total occurrences")):
        c.add(f"RXG-3 (TQ) {what}", message(cid(), [(hep5000_tq(tq), [])]), "block", "WG-INF-041")
    def orc7(text, tq):
        segs = text.split("\r")
        for i, seg in enumerate(segs):
            if seg.startswith("ORC|"):
                f = seg.split("|") + [""] * 8
                f[7] = tq
                segs[i] = "|".join(f[:8])
        return "\r".join(segs)

    c.add("ORC-7 (TQ) duration 1 min", orc7(message(cid(), [(hep5000, [])]), "1^^M1"), "block", "WG-INF-041")
    c.add("ORC-7 (TQ) with a start time only is no programme",
          orc7(message(cid(), [(heparin(10), [])]), "^^^20261204080000"), "allow")
    for seg in ("RXE|^^^20261204||INS^insulin^LOCAL|250||U^U^UCUM||||||||||||||||||250|U/h^U/h^UCUM",
                "RXO|INS^insulin^LOCAL|5||U^U^UCUM|||||||||||||||||250|U/h^U/h^UCUM",
                "RXC|A|HEP^heparin^LOCAL|250000|U^U^UCUM",
                "RXD|1|HEP^heparin^LOCAL|20261204|25000|U^U^UCUM",
                "RXA|0|1|20261204|20261204|HEP^heparin^LOCAL|25000|U^U^UCUM"):
        c.add(f"{seg[:3]} beside the RXG", message(cid(), [(heparin(10), [])], pre=[seg]), "block", "WG-INF-040")
    for code in ("\\X313537373834\\^^MDC", "\\H\\157784\\N\\^^MDC", "^MDC\\X5F\\FLOW_FLUID_PUMP^MDC"):
        c.add(f"OBX-3 {code!r} escaped", message(cid(), [(heparin(10), [obx(1, code, "300", ML_H[0])])]), "block", "WG-INF-019")
    c.add("OBX-3 rate code in a second repetition",
          message(cid(), [(heparin(10), [obx(1, "~157784^^MDC", "300", ML_H[0])])]), "block", "WG-INF-015")
    c.add("escaped weight code hides a second weight",
          message(cid(), [(propofol(30), [weight("80"), obx(2, "\\X3638303633\\^^MDC", "200", KG[0])])]), "block", "WG-INF-019")
    c.add("MSH-2 without '&' and PV1-3 NICU&1",
          message(cid(), [(heparin(10), [])], pv1="PV1||I|NICU&1^1^1").replace("MSH|^~\\&|", "MSH|^~\\|", 1), "block", "WG-HL7-P03")

    # --- Found by a sixth adversarial review (regressions) ---------------------
    bolus5000 = rxg(f1="1", f4="HEP^heparin^LOCAL", f15="5000", f16=U[1])
    for tq1, what in (("TQ1|1||Q1M|||||||||||10", "repeat pattern every minute, 10 times"),
                      ("TQ1|1|||0800~0801~0802", "three explicit times"),
                      ("TQ1|1|10", "quantity 10"),
                      ("TQ1|1|||||||||||||5", "5 occurrences")):
        c.add(f"CH bolus 5000 U with TQ1 {what}", message(cid(), [(bolus5000, [tq1])], orc="CH"), "block", "WG-INF-042")
    c.add("CH bolus 5000 U with TQ1 quantity 1 and pattern Once",
          message(cid(), [(bolus5000, ["TQ1|1|1|Once||||||||||||1"])], orc="CH"), "allow")
    for field, unit, what in (("f24", "mL^liters", "RXG-24 mL with text liters"),
                              ("f18", "U^kilounits", "RXG-18 U with text kilounits"),
                              ("f18", "U^thousand units", "RXG-18 U with text thousand units"),
                              ("f16", "mL/h^mL/24h", "RXG-16 mL/h with text mL/24h"),
                              ("f16", "mL/h^drops/min", "RXG-16 mL/h with text drops/min")):
        f = dict(f1="1", f4="HEP^heparin^LOCAL", f15="10", f16=ML_H[1], f17="25000", f18=U[1], f23="250", f24=ML[1])
        f[field] = unit
        c.add(f"{what}: parts name different units", message(cid(), [(rxg(**f), [])]), "block", "WG-INF-016")
    c.add("RXG-16 mL/h with text milliliters per hour",
          message(cid(), [(heparin(10, "mL/h^milliliters per hour^UCUM"), [])]), "allow")
    c.add("propofol weight kg with text pounds",
          message(cid(), [(propofol(40), [weight("176", "kg^pounds^UCUM")])]), "block", "WG-INF-020")
    c.add("vancomycin over a local-time window across a clock change night",
          message(cid(), [(rxg(f1="1", f4="VANC^vancomycin", f15="1000", f16=MG[1]), ["TQ1|1||||||20260308015900|20260308030000"])]),
          "block", "WG-INF-035")
    c.add("vancomycin over a local-time window on an ordinary night",
          message(cid(), [(rxg(f1="1", f4="VANC^vancomycin", f15="1000", f16=MG[1]), ["TQ1|1||||||20260309010000|20260309020000"])]),
          "allow")
    step2 = rxg(f1="2", f4="HEP^heparin^LOCAL", f15="1000", f16=U_H[1])
    loading = rxg(f1="1", f4="HEP^heparin^LOCAL", f15="50", f16=U_H[1])
    def timed_gives(text, tq1s):
        parts = text.split("\rRXR|^IV^HL70162")
        out = parts[0]
        for tq1, rest in zip(tq1s, parts[1:]):
            out += "\r" + tq1 + "\rRXR|^IV^HL70162" + rest
        return out

    two_step = timed_gives(message(cid(), [(loading, []), (step2, [])]),
                           [f"TQ1|1||||||||||||10^{MIN_CQ}", f"TQ1|2||||||||||||24^{HR_CQ}"])
    assert two_step.count("TQ1|") == 2
    c.add("two-step order, each TQ1 right after its RXG (TIMING_GIVE)", two_step, "allow")
    c.add("two-step order, a TQ1 after the first give's RXR",
          message(cid(), [(loading, [f"TQ1|1||||||||||||10^{MIN_CQ}"]), (step2, [])]), "block", "WG-INF-018")

    # --- Character sets (MSH-18) a receiver decodes before parsing --------------------
    # In Big5, GB 18030 and Shift JIS a byte of 0x80 or above and the ASCII byte
    # after it are one character: `\xa4|` hides a field separator from a receiver
    # that decodes first (HAPI's MSH-18 support, an engine set to "from MSH-18").
    def charset(text, declared):
        head, rest = text.split("\r", 1)
        return head + "|" * (17 - head.count("|")) + declared + "\r" + rest

    for declared, lead in (("BIG-5", "\xa4"), ("GB 18030-2000", "\x81"), ("SJIS", "\x83"),
                           ("Shift_JIS", "\x83"), ("KS X 1001", "\xb0"), ("CNS 11643-1992", "\xa4"),
                           ("X-MAC-JAPANESE", "\x83"), ("8859/1~BIG-5", "\xa4")):
        nicu_hidden = message(cid(), [(heparin(1000, U_H[1], strength="", s_unit="", volume="", v_unit=""), [])],
                              pv1=f"PV1|{lead}|I|ICU|NICU^1^1")
        c.add(f"{declared}: a lead byte hides PV1's separator (ICU to wardgate, NICU to the receiver)",
              charset(nicu_hidden, declared), "block", "WG-HL7-P12", as_bytes=True)
    c.add("BIG-5: a lead byte hides an OBX's separator (a rate wardgate does not read)",
          charset(message(cid(), [(heparin(10), ["OBX|1|NM\xa4|99999^NOTE^LOCAL|157784^MDC_FLOW_FLUID_PUMP^MDC||300|265266^MDC_DIM_MILLI_L_PER_HR^MDC"])]), "BIG-5"),
          "block", "WG-HL7-P12", as_bytes=True)
    c.add("BIG-5: a high byte in a name, away from any separator",
          charset(message(cid(), [(heparin(10), [])]).replace("Doe^Jane", "Doe^J\xa4\xa4ne"), "BIG-5"),
          "block", "WG-HL7-P12", as_bytes=True)
    # A wide set over bytes of 0x80 or above: refused. All ASCII, it reads the
    # same to a UTF-8 reader (HAPI's reading of `UNICODE`) and to a wide one
    # not at all: forwarded. JIS X 0201 (`\\` is the yen sign) always refused.
    for declared in ("UNICODE UTF-16", "UNICODE UTF-32", "UNICODE"):
        c.add(f"{declared} declared over UTF-8 letters",
              charset(message(cid(), [(heparin(10), [])]).replace("Doe^Jane", "Doe^J\xc3\xa9ne"), declared),
              "block", "WG-HL7-P12", as_bytes=True)
        c.add(f"{declared} declared over ASCII", charset(message(cid(), [(heparin(10), [])]), declared), "allow")
    c.add("ISO IR14 declared", charset(message(cid(), [(heparin(10), [])]), "ISO IR14"), "block", "WG-HL7-P12")
    c.add("BIG-5 declared, every byte ASCII", charset(message(cid(), [(heparin(10), [])]), "BIG-5"), "allow")
    c.add("8859/1 with a Latin-1 letter in the name",
          charset(message(cid(), [(heparin(10), [])]).replace("Doe^Jane", "Do\xe9^Jane"), "8859/1"),
          "allow", as_bytes=True)
    c.add("ISO-8859-15 with a Latin-9 letter in the name",
          charset(message(cid(), [(heparin(10), [])]).replace("Doe^Jane", "Do\xe9^Jane"), "ISO-8859-15"),
          "allow", as_bytes=True)
    # The micro sign written as the declared set writes it: 0xB5 is `µ` in
    # ISO 8859-1/-3/-8/-9/-13/-15 and Windows 1250-1258 (a Latin-1 EHR's
    # `µg/kg/min`), `ľ` in 8859-2; undeclared it is no UTF-8. A UTF-8 `µ`
    # (C2 B5) under a Latin set is `Âµ` to a receiver decoding that set.
    micro = "\xb5g/kg/min^\xb5g/kg/min^UCUM"
    for declared in ("8859/1", "ISO-8859-15", "ISO IR100", "WINDOWS-1252", "cp1250", "8859/9", "Latin1"):
        c.add(f"{declared}: propofol 30 \u00b5g/kg/min, the micro sign as one byte 0xB5",
              charset(message(cid(), [(propofol(30, micro), [weight()])]), declared), "allow", as_bytes=True)
        c.add(f"{declared}: propofol 300 \u00b5g/kg/min (3.75x the hard limit), the micro sign as 0xB5",
              charset(message(cid(), [(propofol(300, micro), [weight()])]), declared), "block", "WG-INF-010", as_bytes=True)
    # Greek: 0xEC is the small mu in 8859-7 and Windows 1253 (a Greek EHR's
    # `μg/kg/min`), 0xB5 `΅` in 8859-7 (no unit) and `µ` in 1253.
    greek_mu = "\xecg/kg/min^\xecg/kg/min^UCUM"
    for declared in ("8859/7", "ISO IR126", "WINDOWS-1253"):
        c.add(f"{declared}: propofol 30 \u03bcg/kg/min, the Greek mu as one byte 0xEC",
              charset(message(cid(), [(propofol(30, greek_mu), [weight()])]), declared), "allow", as_bytes=True)
        c.add(f"{declared}: propofol 300 \u03bcg/kg/min (3.75x the hard limit), the Greek mu as 0xEC",
              charset(message(cid(), [(propofol(300, greek_mu), [weight()])]), declared), "block", "WG-INF-010", as_bytes=True)
    for declared in ("8859/1", "cp1252", "8859/2"):
        c.add(f"{declared}: 0xEC is no mu there (propofol 30 \u03bcg/kg/min to a Greek reader)",
              charset(message(cid(), [(propofol(30, greek_mu), [weight()])]), declared), "block", "WG-INF-004", as_bytes=True)
    for declared in ("8859/2", "ISO-8859-5", "8859/7", "KOI8-R"):
        c.add(f"{declared}: 0xB5 is no micro sign there (propofol 30 \u00b5g/kg/min to a Latin-1 reader)",
              charset(message(cid(), [(propofol(30, micro), [weight()])]), declared), "block", "WG-INF-004", as_bytes=True)
    c.add("undeclared: propofol 30 with 0xB5 (no UTF-8, no declared set)",
          message(cid(), [(propofol(30, micro), [weight()])]), "block", "WG-INF-004", as_bytes=True)
    c.add("8859/1: the micro sign written in UTF-8 (C2 B5, 'Â\u00b5g' to a Latin-1 receiver)",
          charset(message(cid(), [(propofol(30, "\xc2\xb5g/kg/min"), [weight()])]), "8859/1"),
          "block", "WG-INF-004", as_bytes=True)
    # The superscript two as the declared set writes it: 0xB2 is `²` in the
    # Latin sets and Windows 1252-1258, `˛` in Windows 1250 and `І` in 1251.
    sq = lambda rate, unit="mg/m\xb2/h", bsa_unit="m\xb2": message(  # noqa: E731
        cid(), [(rxg(f1="1", f4="VANC^vancomycin", f15=str(rate), f16=f"{unit}^{unit}^UCUM"),
                 [obx(1, "188744^MDC_AREA_BODY_SURF_ACTUAL^MDC", "2", f"{bsa_unit}^{bsa_unit}^UCUM")])])
    for declared in ("8859/1", "ISO-8859-15", "WINDOWS-1252", "8859/9"):
        c.add(f"{declared}: vancomycin 500 mg/m\u00b2/h over 2 m\u00b2, the superscript as one byte 0xB2",
              charset(sq(500), declared), "allow", as_bytes=True)
        c.add(f"{declared}: vancomycin 1500 mg/m\u00b2/h over 2 m\u00b2 (3000 mg/h), the superscript as 0xB2",
              charset(sq(1500), declared), "block", "WG-INF-010", as_bytes=True)
        c.add(f"{declared}: a surface area in cm\u00b2 (0xB2) is no m\u00b2",
              charset(sq(500, bsa_unit="cm\xb2"), declared), "block", None, as_bytes=True)
    for declared in ("cp1250", "WINDOWS-1251", "8859/2"):
        c.add(f"{declared}: 0xB2 is no superscript there (vancomycin 500 mg/m\u00b2/h to a Latin-1 reader)",
              charset(sq(500), declared), "block", "WG-INF-004", as_bytes=True)
    c.add("undeclared: vancomycin 500 mg/m2/h with 0xB2 (no UTF-8, no declared set)",
          sq(500), "block", "WG-INF-004", as_bytes=True)
    c.add("UNICODE UTF-8: vancomycin 500 mg/m\u00b2/h in UTF-8",
          charset(sq(500, "mg/m\u00b2/h", "m\u00b2"), "UNICODE UTF-8"), "allow")
    c.add("UNICODE UTF-8: the micro sign in UTF-8",
          charset(message(cid(), [(propofol(30, "\u00b5g/kg/min"), [weight()])]), "UNICODE UTF-8"), "allow")
    c.add("UNICODE UTF-8 with a letter in the name",
          charset(message(cid(), [(heparin(10), [])]).replace("Doe^Jane", "Doé^Jane"), "UNICODE UTF-8"), "allow")

    # --- A second body weight under a code a receiver reads as the weight's --------
    for code, what in (("068063^MDC_ATTR_PT_WEIGHT^MDC", "leading zero"),
                       ("68063.0", "decimal point"),
                       ("1::2527", "partition::code"),
                       ("68063&1^MDC_ATTR_PT_WEIGHT&x^MDC", "sub-components"),
                       ("188736.0^^MDC", "vital-sign code with a decimal point"),
                       ("3142-7^Body weight (stated)^LN", "LOINC stated weight")):
        c.add(f"propofol with a second weight coded by {what} that disagrees",
              message(cid(), [(propofol(30), [weight("80"), weight("250", code=code, n=2)])]), "block", "WG-INF-021")

    # --- A drug whose library name is more than one word ------------------------------
    kcl = lambda rate, text="Potassium chloride 20 mEq in 100 mL", code="KCL": rxg(
        f1="1", f4=f"{code}^{text}^LOCAL", f15=str(rate), f16="mEq/h^mEq/h^UCUM")
    c.add("potassium chloride named by a two-word name inside its text", message(cid(), [(kcl(8), [])]), "allow")
    c.add("potassium chloride above its hard limit, two-word name in the text",
          message(cid(), [(kcl(40), [])]), "block", "WG-INF-010")
    c.add("insulin code with a potassium chloride text", message(cid(), [(kcl(8, code="INS"), [])]),
          "block", "WG-INF-016")
    c.add("potassium chloride code with a text naming heparin first",
          message(cid(), [(kcl(8, text="Heparin then potassium chloride"), [])]), "block", "WG-INF-016")

    # --- A programming quantity under an identifier wardgate does not read ------------
    for code, value, unit, what in (("157999^MDC_TIME_PD_PROG^MDC", "1", "min^min^UCUM", "an infusion duration"),
                                    ("99999^PUMP_DURATION^L", "0.5", "h^h^UCUM", "a vendor's duration"),
                                    ("99998^PUMP_VOLUME^L", "250", "mL^mL^UCUM", "a vendor's volume"),
                                    ("99997^PUMP_RATE^L", "300", "mL/h^mL/h^UCUM", "a vendor's rate"),
                                    ("99996^PUMP_DOSE^L", "5000", "U^U^UCUM", "a vendor's dose")):
        c.add(f"heparin with {what} under an unread identifier",
              message(cid(), [(heparin(10, vtbi=250), [obx(1, code, value, unit)])]), "block", "WG-INF-043")
    # A vendor's programming quantity whose unit wardgate refuses to read for a
    # parameter it knows: case-folded, escaped, repeated, beside a local code, a
    # UCUM form the table lacks. A pump server that knows the code reads each
    # (found by an adversarial review: all were forwarded).
    for value, unit, what, rule in (("500", "ML/HR", "an upper-case rate", "WG-INF-014"),
                              ("50", "ML/MIN", "an upper-case rate per minute", "WG-INF-014"),
                              ("5000", "ML", "an upper-case volume", "WG-INF-014"),
                              ("500", "\\X6D\\L/h", "an escaped rate", "WG-INF-019"),
                              ("500", "mL/h~mL/h", "a repeated rate", "WG-INF-015"),
                              ("500", "mL/h^^^MLHR^^99VND", "a rate beside a local code", "WG-INF-004"),
                              ("500", "mL/(24.h)", "a UCUM rate per 24 hours", "WG-INF-004"),
                              # Read as mL/h since session 35: the parameter is then the one refused.
                              ("500", "mL.h-1", "a UCUM rate with a negative exponent", "WG-INF-043"),
                              ("500", "mL{bag}/h", "a UCUM rate with an annotation", "WG-INF-043"),
                              ("500", "Ml/Hr", "a mixed-case rate", "WG-INF-014"),
                              ("20000", "MG/HR", "an upper-case mass rate", "WG-INF-014"),
                              ("200", "MEQ/HR", "an upper-case equivalents rate", "WG-INF-014"),
                              ("5000", "U~mL", "a repeated unit, one reading a dose", "WG-INF-015"),
                              ("500", "mcL/min", "microlitres per minute", "WG-INF-004"),
                              ("500", "MCL/MIN", "upper-case microlitres per minute", "WG-INF-004"),
                              ("500", "mL/h&UCUM", "a rate with its coding system as a subcomponent", "WG-INF-004"),
                              ("500", "gtt/min", "drops per minute", "WG-INF-004"),
                              ("500", "[drp]/min", "UCUM drops per minute", "WG-INF-004"),
                              ("500", "mL per 24 hours", "a rate per 24 hours in words", "WG-INF-004"),
                              ("500", "dL/h", "decilitres per hour", "WG-INF-043"),
                              ("500", "mdc_dim_milli_l_per_hr", "a lower-case MDC name", "WG-INF-004"),
                              ("500", "265266.0", "an MDC code with a decimal point", "WG-INF-004")):
        c.add(f"heparin with a vendor's rate code and {what}",
              message(cid(), [(heparin(10, vtbi=250), [obx(1, "99003^VND_INFUSION_RATE^99VND", value, unit)])]), "block", rule)
    # UCUM annotations after a unit symbol change no magnitude; one that a reader may
    # take for a magnitude or a unit is refused.
    for unit, verdict, rule in (("U{regular}/h^U{regular}/h^UCUM", "allow", None),
                                ("[iU]{infusion}/h^[iU]{infusion}/h^UCUM", "allow", None),
                                # A drug's name in braces may name another drug: refused.
                                ("U{insulin}/h^U{insulin}/h^UCUM", "block", "WG-INF-004"),
                                ("U{heparin}/h^U{heparin}/h^UCUM", "block", "WG-INF-004"),
                                ("U{x1000}/h^U{x1000}/h^UCUM", "block", "WG-INF-004"),
                                ("{units}/h^{units}/h^UCUM", "block", "WG-INF-004")):
        c.add(f"insulin 5 {unit.split('^')[0]}", message(cid(), [(insulin(5, unit), [])]), verdict, rule)
    # Laboratory results under the give, in units no pump is programmed with, stay allowed.
    for code, value, unit in (("2345-7^Glucose^LN", "120", "MG/DL"), ("2345-7^Glucose^LN", "6.7", "mmol/L"),
                              ("2951-2^Sodium^LN", "140", "mEq/L"), ("59408-5^SpO2^LN", "97", "%"),
                              ("8867-4^Heart rate^LN", "72", "/min"), ("8480-6^Systolic BP^LN", "120", "mm[Hg]"),
                              ("33914-3^eGFR^LN", "90", "mL/min/{1.73_m2}")):
        c.add(f"heparin with a laboratory result in {unit} under the give",
              message(cid(), [(heparin(10), [obx(1, code, value, unit)])]), "allow")
    c.add("propofol with a dosing weight (not the body weight) under the give",
          message(cid(), [(propofol(30), [weight("80"), obx(2, "DOSINGWT^Dosing weight^L", "250", "kg^kg^UCUM")])]),
          "block", "WG-INF-043")
    c.add("heparin with a drug amount under an identifier naming a weight",
          message(cid(), [(heparin(10), [obx(1, "BOLUSWEIGHT^Bolus weight^L", "5000", "mg^mg^UCUM")])]),
          "block", "WG-INF-043")
    c.add("heparin with the patient's height under the give",
          message(cid(), [(heparin(10), [obx(1, "8302-2^Body height^LN", "172", "cm^cm^UCUM")])]), "allow")
    c.add("heparin with a device identifier OBX (no unit) under the give",
          message(cid(), [(heparin(10), ["OBX|1||69986^MDC_DEV_PUMP_INFUS_VMD^MDC|1.1.1||||||F"])]), "allow")

    # --- The point of care elsewhere in PV1-3 while PV1-3.1 names no care area --------
    for pv1, what in (("PV1||I|^1^1^NICU", "NICU as the facility"),
                      ("PV1||I|&NICU^1^1", "NICU as PV1-3.1's second subcomponent"),
                      ("PV1||I|^^^^^^^^NICU", "NICU as the location description"),
                      ("PV1||I|NICU*^1^1", "NICU with a trailing mark")):
        c.add(f"heparin 1000 U/h with {what}",
              message(cid(), [(heparin(1000, U_H[1], strength="", s_unit="", volume="", v_unit=""), [])], pv1=pv1),
              "block", "WG-INF-032")
    # A strength per volume in RXG-17/18 with RXG-23/24 empty is the concentration.
    c.add("heparin mL/h with a concentration unit in RXG-18 and no RXG-23/24 volume",
          message(cid(), [(heparin(10, strength="100", s_unit="U/mL^U/mL^UCUM", volume="", v_unit=""), [])]),
          "allow")
    c.add("heparin 30 mL/h at 100 U/mL written in RXG-17/18 alone (3000 U/h)",
          message(cid(), [(heparin(30, strength="100", s_unit="U/mL^U/mL^UCUM", volume="", v_unit=""), [])]),
          "block", "WG-INF-010")
    c.add("heparin with an amount unit in RXG-18 and no RXG-23/24 volume",
          message(cid(), [(heparin(10, strength="25000", s_unit=U[1], volume="", v_unit=""), [])]),
          "block", "WG-INF-007")
    c.add("heparin 1000 U/h with an unknown ward and nothing else in PV1-3 (default care area)",
          message(cid(), [(heparin(1000, U_H[1], strength="", s_unit="", volume="", v_unit=""), [])],
                  pv1="PV1||I|3 North^301^1^HOSP"), "allow")

    # --- Unknowns and missing parts ---------------------------------------------------
    c.add("unknown drug", message(cid(), [(heparin(10).replace("HEP^heparin^LOCAL", "MORPH^morphine^LOCAL"), [])]), "block", "WG-INF-003")
    c.add("no give code", message(cid(), [(heparin(10).replace("HEP^heparin^LOCAL", ""), [])]), "block", "WG-INF-003")
    c.add("unknown rate unit", message(cid(), [(heparin(10, "furlong/h^furlong/h^L"), [])]), "block", "WG-INF-004")
    c.add("missing rate unit", message(cid(), [(heparin(10, ""), [])]), "block", "WG-INF-004")
    c.add("volume rate without strength", message(cid(), [(heparin(10, strength="", s_unit="", volume="", v_unit=""), [])]), "block", "WG-INF-007")
    c.add("strength in a rate unit", message(cid(), [(heparin(10, s_unit="U/h"), [])]), "block", "WG-INF-007")
    c.add("order without RXG", message(cid(), []), "block", "WG-INF-002")
    c.add("mg rate for a units drug", message(cid(), [(insulin(5, "mg/h"), [])]), "block", "WG-INF-005")
    c.add("time unit as a rate unit", message(cid(), [(insulin(5, "h"), [])]), "block", "WG-INF-005")
    c.add("unknown order type", message(cid(), [(insulin(5), ["OBX|1|ST|158037^MDC_INFUS_ORDER_STEP_TYPE^MDC||delay"])]), "block", "WG-INF-009")

    # --- Orders that disagree on bolus or infusion (ORC-1) -------------------------
    # Found by an adversarial review: a second ORC before one RXG, or a second
    # order, let a first-ORC reader run a "bolus" as an infusion at 50x its limit.
    big = rxg(f1="1", f4="HEP^heparin^LOCAL", f15="100000", f16=U_H[0], f17="25000", f18=U[0], f23="250", f24=ML[0])
    six_min = f"TQ1|1||||||||||||6^{MIN_CQ}"
    c.add("NW then CH before one RXG (a bolus to wardgate, an infusion to a first-ORC reader)",
          message(cid(), [(big, [])], orc="NW", pre=("ORC|CH|X1^EHR", six_min)), "block", "WG-INF-039")
    c.add("CH then NW before one RXG",
          message(cid(), [(big, [])], orc="CH", pre=("ORC|NW|X2^EHR", six_min)), "block", "WG-INF-039")
    c.add("an infusion order, then a bolus order in one message",
          message(cid(), [(heparin(10), [])], orc="NW",
                  post=("ORC|CH|X3^EHR", rxg(f1="2", f4="HEP^heparin^LOCAL", f15="5000", f16=U[1]), "RXR|^IV^HL70162")),
          "block", "WG-INF-039")
    c.add("two ORC NW before one RXG at a routine rate (same order kind)",
          message(cid(), [(heparin(10), [])], orc="NW", pre=("ORC|NW|X4^EHR",)), "allow")
    c.add("two bolus orders in one message, each within limits",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin^LOCAL", f15="5000", f16=U[1]), [])], orc="CH",
                  post=("ORC|CH|X5^EHR", rxg(f1="2", f4="HEP^heparin^LOCAL", f15="4000", f16=U[1]), "RXR|^IV^HL70162")),
          "allow")

    # --- Review 14: readings the pump may take that wardgate did not judge ----------
    # RXG-14 "give per": an amount per time is a rate to wardgate; a receiver that
    # ignores RXG-14 (PCD-03 reads RXG-5 as the volume to be infused) runs the
    # amount as written over the duration.
    c.add("RXG-5 2000 mL per week over 24 h (a 2000 mL volume at 83 mL/h without RXG-14)",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin^LOCAL", f5="2000", f7=ML[0], f14="W1", f17="25000", f18=U[0], f23="250", f24=ML[0]),
                           [f"TQ1|1||||||||||||24^{HR_CQ}"])]),
          "block", "WG-INF-029")
    c.add("RXG-5 20000 U per day over 30 min (40000 U/h without RXG-14)",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin^LOCAL", f5="20000", f7=U[0], f14="D1", f17="25000", f18=U[0], f23="250", f24=ML[0]),
                           [f"TQ1|1||||||||||||30^{MIN_CQ}"])]),
          "block", "WG-INF-010")
    c.add("RXG-15 30 mL/h beside RXG-5 5040 mL per week (a 5040 mL volume without RXG-14)",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin^LOCAL", f5="5040", f7=ML[0], f14="W1", f15="30", f16=ML_H[0], f17="5000", f18=U[0], f23="500", f24=ML[0]), [])]),
          "block", "WG-INF-029")
    c.add("RXG-5 10 mL per hour for 24 h (slower without RXG-14)",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin^LOCAL", f5="10", f7=ML[0], f14="H1", f17="25000", f18=U[0], f23="250", f24=ML[0]),
                           [f"TQ1|1||||||||||||24^{HR_CQ}"])]),
          "allow")
    c.add("bolus RXG-5 20000 U per hour for 6 min (a 20000 U bolus without RXG-14)",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin^LOCAL", f5="20000", f7=U[0], f14="H1", f17="25000", f18=U[0], f23="250", f24=ML[0]),
                           [f"TQ1|1||||||||||||6^{MIN_CQ}"])], orc="CH"),
          "block", "WG-INF-011")
    c.add("RXG-5 250 U/kg per day beside 83.33 mL/h, 80 kg (2000 mL without RXG-14)",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin^LOCAL", f5="250", f7="U/kg^U/kg^UCUM", f14="D1", f15="83.33", f16=ML_H[0], f17="5000", f18=U[0], f23="500", f24=ML[0]),
                           [weight("80")])]),
          "block", "WG-INF-029")
    c.add("RXG-5 16800 U per week beside 100 U/h, no concentration (a volume not readable without RXG-14)",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin^LOCAL", f5="16800", f7=U[0], f14="W1", f15="100", f16=U_H[0]), [])]),
          "block", "WG-INF-007")
    # Two body weights that agree within 1%: limits hold with each.
    for a, b in (("79.2", "80"), ("80", "79.2")):
        c.add(f"25.25 U/kg/h with weights {a} then {b} kg (2020 U/h with 80 kg)",
              message(cid(), [(rxg(f1="1", f4="HEP^heparin^LOCAL", f15="25.25", f16="U/kg/h^U/kg/h^UCUM"),
                               [weight(a), weight(b, n=2)])]),
              "block", "WG-INF-010")
    # A bolus timed by two agreeing durations: the larger dose is judged.
    for f6, f13 in ((f"369^264320&MDC_DIM_X_SEC&MDC", f"6^{MIN_CQ}"), (f"6^{MIN_CQ}", "369^264320&MDC_DIM_X_SEC&MDC")):
        c.add(f"bolus 100000 U/h, TQ1-6 {f6.split('^')[0]} and TQ1-13 {f13.split('^')[0]} (10250 U by the longer)",
              message(cid(), [(rxg(f1="1", f4="HEP^heparin^LOCAL", f15="100000", f16=U_H[0], f17="25000", f18=U[0], f23="250", f24=ML[0]),
                               [f"TQ1|1|||||{f6}|||||||{f13}"])], orc="CH"),
              "block", "WG-INF-011")
    # Timing that states one give (false blocks found by the review).
    c.add("ORC-7 TQ interval ONCE (v2.3 style)",
          message(cid(), [(heparin(10), [])]).replace("^EHR\r", "^EHR|||||1^ONCE\r", 1), "allow")
    c.add("TQ1-3 C (table 0335: continuously between start and end)",
          message(cid(), [(heparin(10), ["TQ1|1||C^Continuous^HL70335"])]), "allow")
    c.add("ORC-7 TQ interval Q6H", message(cid(), [(heparin(10), [])]).replace("^EHR\r", "^EHR|||||1^Q6H\r", 1),
          "block", "WG-INF-041")

    # --- Review 16 ---------------------------------------------------------------
    # An amount with RXG-14 beside a dose stated elsewhere is a dose as written.
    c.add("vancomycin RXG-5 6000 mg per 3 h beside a 1000 mg dose (6000 mg without RXG-14)",
          message(cid(), [(rxg(f1="1", f4="VANC^vancomycin^LOCAL", f5="6000", f7=MG[0], f14="H3", f15="1000", f16=MG[0]), [])]),
          "block", "WG-INF-011")
    c.add("gentamicin RXG-5 2000 mg per hour beside a 500 mg dose for 15 min",
          message(cid(), [(rxg(f1="1", f4="GENT^gentamicin^LOCAL", f5="2000", f7=MG[0], f14="H1", f15="500", f16=MG[0]),
                           [f"TQ1|1||||||||||||15^{MIN_CQ}"])]),
          "block", "WG-INF-011")
    # Timing that may repeat a give.
    bolus8000 = rxg(f1="1", f4="HEP^heparin^LOCAL", f15="8000", f16=U[0], f17="25000", f18=U[0], f23="250", f24=ML[0])
    for tq in ("1^ONCE^^202612041000~1^ONCE^^202612041800", "1^^^202612041000~1^^^202612041800", "1^ONCE^^^^^^^S~1^ONCE"):
        c.add(f"bolus with ORC-7 {tq} (two timings)",
              message(cid(), [(bolus8000, [])], orc="CH").replace("^EHR\r", f"^EHR|||||{tq}\r", 1),
              "block", "WG-INF-041")
    c.add("bolus with RXG-3 two timings",
          message(cid(), [(bolus8000.replace("RXG|1|||", "RXG|1||1^^^202612041000~1^^^202612041800|", 1), [])], orc="CH"),
          "block", "WG-INF-041")
    for rpt in ("C^^^^6^h", "ONCE^^^^6^h", "ONCE^^^^^^^^^^Q6H"):
        c.add(f"bolus with TQ1-3 {rpt} (a period or timing beside the pattern)",
              message(cid(), [(bolus8000, [f"TQ1|1||{rpt}"])], orc="CH"), "block", "WG-INF-042")
    c.add("bolus with two TQ1 each with a start",
          message(cid(), [(bolus8000, ["TQ1|1||||||202612041000", "TQ1|2||||||202612041800"])], orc="CH"),
          "block", "WG-INF-042")
    for rpt in ("C&Continuous&HL70335", "ONCE&One time only&HL70335", "c"):
        c.add(f"TQ1-3 {rpt} (one give)",
              message(cid(), [(heparin(10), [f"TQ1|1||{rpt}"])]), "allow")
    # Every weight given must be in the care area's range.
    nicu = "PV1||I|NICU^1^1"
    for a, b in (("10", "10.09"), ("10.09", "10")):
        c.add(f"NICU heparin with weights {a} then {b} kg (10.09 outside 0.3-10)",
              message(cid(), [(heparin(0.5, strength="1000", volume="100"), [weight(a), weight(b, n=2)])], pv1=nicu),
              "block", "WG-INF-031")

    # --- Review 17 ---------------------------------------------------------------
    for tqs in (["TQ1|1|||1000", "TQ1|2|||1800"], ["TQ1|1||||||202612041000", "TQ1|2|||1800"],
                [f"TQ1|1||||||202612041000", f"TQ1|2||||6^{HR_CQ}"], [f"TQ1|1||||0^{HR_CQ}", f"TQ1|2||||6^{HR_CQ}"]):
        c.add(f"bolus with {tqs[0]} and {tqs[1]} (two starts)",
              message(cid(), [(bolus8000, tqs)], orc="CH"), "block", "WG-INF-042")
    c.add("bolus with a start in ORC-7 and another in TQ1",
          message(cid(), [(bolus8000, ["TQ1|1||||||202612041800"])], orc="CH").replace("^EHR\r", "^EHR|||||1^ONCE^^202612041000\r", 1),
          "block", "WG-INF-042")
    c.add("bolus with a start in RXG-3 and another in ORC-7",
          message(cid(), [(bolus8000.replace("RXG|1|||", "RXG|1||1^ONCE^^202612041000|", 1), [])], orc="CH")
          .replace("^EHR\r", "^EHR|||||1^ONCE^^202612041800\r", 1),
          "block", "WG-INF-042")
    for rpt in ("&Q6H", "^Q6H", "ONCE^Q6H", "ONCE^Once^HL70335&Q6H"):
        c.add(f"bolus with TQ1-3 {rpt} (a repeat pattern as text)",
              message(cid(), [(bolus8000, [f"TQ1|1||{rpt}"])], orc="CH"), "block", "WG-INF-042")
    c.add("bolus with one start in TQ1-7 and TQ1-3 ONCE^Once^HL70335",
          message(cid(), [(bolus8000, ["TQ1|1||ONCE^Once^HL70335||||202612041000"])], orc="CH"), "allow")
    c.add("NICU heparin with disagreeing weights 12 and 9 kg (12 outside the care area's range)",
          message(cid(), [(heparin(0.5, strength="1000", volume="100"), [weight("12"), weight("9", n=2)])], pv1="PV1||I|NICU^1^1"),
          "block", "WG-INF-021")

    # --- The route of administration (RXR-1), for drugs with `routes` ---------------
    vinc = rxg(f1="1", f4="VINC^vincristine^LOCAL", f5="1.4", f7=MG[1])
    bupi = rxg(f1="1", f4="BUPI^bupivacaine^LOCAL", f15="10", f16="mg/h^mg/h^UCUM")
    iv, it = "RXR|IV^Intravenous^HL70162", "RXR|IT^Intrathecal^HL70162"
    for rxrs, verdict, rule, what in (
        ((iv,), "allow", None, "IV, as listed"),
        (("RXR|iv^Intravenous^HL70162",), "allow", None, "iv in lower case"),
        ((iv, "RXR|IV"), "allow", None, "two RXR that agree"),
        (("RXR|IV^Intravenous^HL70162^IV^Intravenous^0162",), "allow", None, "an alternate identifier that agrees"),
        ((it,), "block", "WG-INF-044", "IT (intrathecal: fatal)"),
        (("RXR|EP^Epidural^HL70162",), "block", "WG-INF-044", "EP"),
        ((), "block", "WG-INF-045", "no RXR"),
        (("RXR|^IV^HL70162",), "block", "WG-INF-045", "RXR-1 with only text"),
        (("RXR|",), "block", "WG-INF-045", "RXR-1 empty"),
        ((iv, it), "block", "WG-INF-045", "two RXR naming IV and IT"),
        (("RXR|IV^Intravenous^HL70162~IT^Intrathecal^HL70162",), "block", "WG-INF-045", "RXR-1 repetitions IV and IT"),
        (("RXR|IV^Intravenous^HL70162^IT^Intrathecal^HL70162",), "block", "WG-INF-045", "identifier IV, alternate identifier IT"),
        (("RXR|47625008^Intravenous route^SCT",), "block", "WG-INF-045", "a SNOMED CT code"),
        (("RXR|IV^IT^HL70162",), "block", "WG-INF-045", "identifier IV with the text IT"),
        (("RXR|IV^EP^HL70162",), "block", "WG-INF-045", "identifier IV with the text EP"),
        (("RXR|IV^Intrathecal^HL70162",), "block", "WG-INF-045", "identifier IV with the text Intrathecal"),
        (("RXR|IV^Epidural^HL70162",), "block", "WG-INF-045", "identifier IV with the text Epidural"),
        (("RXR|IV^Intrathecal route^HL70162",), "block", "WG-INF-045", "identifier IV with the text Intrathecal route"),
        (("RXR|IV^Intra-thecal^HL70162",), "block", "WG-INF-045", "identifier IV with the text Intra-thecal"),
        (("RXR|IV^Spinal^HL70162",), "block", "WG-INF-045", "identifier IV with the text Spinal"),
        (("RXR|IV^Intravenous route^HL70162",), "allow", None, "IV with the text Intravenous route"),
        (("RXR|IV^Intravenous^HL70162^47625008^Intravenous route^SCT",), "allow", None, "IV dual-coded with SNOMED CT"),
        (("RXR|IV^Intravenous^HL70162^72607000^Intrathecal route^SCT",), "block", "WG-INF-045", "IV dual-coded with SNOMED CT's intrathecal"),
    ):
        c.add(f"vincristine with {what}", message(cid(), [(vinc, [])], rxr=rxrs), verdict, rule)
    c.add("vincristine named intrathecal in its own text, RXR IV", message(cid(), [(vinc.replace("VINC^vincristine^LOCAL", "VINC^vincristine intrathecal^LOCAL"), [])], rxr=(iv,)), "block", "WG-INF-045")
    # An RXR in no give: a receiver taking the message's first RXR reads it.
    c.add("vincristine with IT before the ORC and IV in the give", message(cid(), [(vinc, [])], rxr=(iv,), pre=()).replace("ORC|", it + "\rORC|", 1), "block", "WG-INF-045")
    c.add("vincristine with IT before PV1 and IV in the give", message(cid(), [(vinc, [])], rxr=(iv,)).replace("PV1|", it + "\rPV1|", 1), "block", "WG-INF-045")
    for pv1, rxrs, verdict, rule, what in (
        ("PV1||I|ICU^1^1", ("RXR|EP^Epidural^HL70162",), "allow", None, "EP in adult ICU"),
        ("PV1||I|ICU^1^1", (it,), "block", "WG-INF-044", "IT in adult ICU (EP only)"),
        ("PV1||I|NICU^1^1", (it,), "allow", None, "IT in the NICU (its own list)"),
        ("PV1||I|NICU^1^1", (iv,), "block", "WG-INF-044", "IV in the NICU"),
    ):
        c.add(f"bupivacaine with {what}", message(cid(), [(bupi, [])], pv1=pv1, rxr=rxrs), verdict, rule)
    # A drug without `routes` reads no RXR, as before.
    c.add("heparin with an IT route (no routes in its entry)", message(cid(), [(heparin(10), [])], rxr=(it,)), "allow")
    c.add("heparin without RXR (no routes in its entry)", message(cid(), [(heparin(10), [])], rxr=()), "allow")

    # --- PCA (PCD TF-2's PIV parameters) -------------------------------------------
    def hydm(rate="0.5", **extra):
        # 100 mg in 100 mL (1 mg/mL), the basal rate in mL/h.
        f = dict(f1="1", f4="HYDM^hydromorphone^LOCAL", f15=rate, f16=ML_H[1], f17="100", f18=MG[1], f23="100", f24=ML[1])
        f.update(extra)
        return rxg(**f)

    demand = obx(1, "158017^MDC_DOSE_PCA_PATIENT^MDC", "0.5", MG[1])
    def lockout(v="10", unit="min^min^UCUM", n=2):
        return obx(n, "157989^MDC_TIME_PCA_LOCKOUT^MDC", v, unit)
    loading = obx(3, "158018^MDC_DOSE_LOADING^MDC", "2", MG[1])
    piv = [
        obx(4, "157988^MDC_RATE_PCA_MAX_DOSES_PER_HOUR^MDC", "6", "/h^per hour^UCUM"),
        obx(5, "157985^MDC_DOSE_PCA_LIMIT^MDC", "4", MG[1]),
        obx(6, "157987^MDC_TIME_PD_PCA_DOSE_LIMIT^MDC", "1", "h^h^UCUM"),
        obx(7, "157986^MDC_VOL_PCA_DOSE_LIMIT^MDC", "4", ML[1]),
        obx(8, "157994^MDC_VOL_FLUID_CONTAINER_START^MDC", "100", ML[1]),
    ]
    for what, after, verdict, rule in (
        ("PCA with a 10 min lockout", [demand, lockout()], "allow", None),
        ("PCA with every PIV bound", [demand, lockout(), *piv], "allow", None),
        ("PCA with a 0.25 h lockout", [demand, lockout("0.25", "h^h^UCUM")], "allow", None),
        ("PCA with a loading dose", [demand, lockout(), loading], "allow", None),
        ("PCA with a 5 min lockout", [demand, lockout("5")], "block", "WG-INF-046"),
        ("PCA with a 300 s lockout", [demand, lockout("300", "s^s^UCUM")], "block", "WG-INF-046"),
        ("PCA with no lockout", [demand], "block", "WG-INF-009"),
        ("PCA with two lockouts that disagree", [demand, lockout(), lockout("5", n=3)], "block", "WG-INF-017"),
        ("PCA lockout in mL", [demand, lockout("10", ML[1])], "block", "WG-INF-005"),
        ("PCA doses per hour in mL/h", [demand, lockout(), obx(4, "157988^MDC_RATE_PCA_MAX_DOSES_PER_HOUR^MDC", "6", ML_H[1])], "block", "WG-INF-004"),
        ("PCA dose limit in mL/h", [demand, lockout(), obx(5, "157985^MDC_DOSE_PCA_LIMIT^MDC", "4", ML_H[1])], "block", "WG-INF-005"),
        ("PCA demand dose above the dose limit", [obx(1, "158017^MDC_DOSE_PCA_PATIENT^MDC", "5", MG[1]), lockout()], "block", "WG-INF-011"),
        ("PCA loading dose above the dose limit", [demand, lockout(), obx(3, "158018^MDC_DOSE_LOADING^MDC", "20", MG[1])], "block", "WG-INF-011"),
        ("PCA hourly: 1 mg demand every 6 min (10.5 mg in an hour)", [obx(1, "158017^MDC_DOSE_PCA_PATIENT^MDC", "1", MG[1]), lockout("6")], "block", "WG-INF-048"),
        # A 10 min lockout fits 6 doses in a rolling hour (at 0, 10 ... 50), as
        # pumps and ISMP count them: 0.5 + 6 x 1.25 is the 8 mg limit itself.
        ("PCA hourly: 1.25 mg every 10 min on a 0.5 mg/h basal (8 mg, the limit)", [obx(1, "158017^MDC_DOSE_PCA_PATIENT^MDC", "1.25", MG[1]), lockout()], "allow", None),
        # Not whole minutes: a pump may cut 599.9999999 s to 599 s and fit a 7th dose (9.25 mg).
        ("PCA hourly: 1.25 mg every 599.9999999 s on a 0.5 mg/h basal", [obx(1, "158017^MDC_DOSE_PCA_PATIENT^MDC", "1.25", MG[1]), lockout("599.9999999", "s^s^UCUM")], "block", "WG-INF-048"),
        ("PCA hourly: 1.25 mg every 600 s on a 0.5 mg/h basal (8 mg, the limit)", [obx(1, "158017^MDC_DOSE_PCA_PATIENT^MDC", "1.25", MG[1]), lockout("600", "s^s^UCUM")], "allow", None),
        ("PCA hourly: 1.3 mg every 10 min on a 0.5 mg/h basal (8.3 mg)", [obx(1, "158017^MDC_DOSE_PCA_PATIENT^MDC", "1.3", MG[1]), lockout()], "block", "WG-INF-048"),
        ("PCA hourly: 1 mg demand every 6 min, 4 doses an hour at most", [obx(1, "158017^MDC_DOSE_PCA_PATIENT^MDC", "1", MG[1]), lockout("6"), obx(4, "157988^MDC_RATE_PCA_MAX_DOSES_PER_HOUR^MDC", "4", "")], "allow", None),
        ("PCA hourly: 1 mg demand every 6 min, 4 mg in any hour", [obx(1, "158017^MDC_DOSE_PCA_PATIENT^MDC", "1", MG[1]), lockout("6"), *piv[1:3]], "allow", None),
        ("PCA hourly: a zero lockout beside another", [demand, lockout("6"), lockout("0", n=3)], "block", "WG-INF-017"),
        ("PCA hourly: doses per hour 0 (no limit to many pumps), 1 mg every 6 min", [obx(1, "158017^MDC_DOSE_PCA_PATIENT^MDC", "1", MG[1]), lockout("6"), obx(4, "157988^MDC_RATE_PCA_MAX_DOSES_PER_HOUR^MDC", "0", "")], "block", "WG-INF-048"),
        ("PCA hourly: a dose limit of 0 mg per hour, 1 mg every 6 min", [obx(1, "158017^MDC_DOSE_PCA_PATIENT^MDC", "1", MG[1]), lockout("6"), obx(5, "157985^MDC_DOSE_PCA_LIMIT^MDC", "0", MG[1]), piv[2]], "block", "WG-INF-048"),
        ("PCA hourly: a loading and a clinician dose of 3 mg each", [demand, lockout(), obx(3, "158018^MDC_DOSE_LOADING^MDC", "3", MG[1]), obx(9, "158019^MDC_DOSE_CLINICIAN^MDC", "3", MG[1])], "block", "WG-INF-048"),
        ("PCA container above the volume limit, no VTBI", [demand, lockout(), obx(8, "157994^MDC_VOL_FLUID_CONTAINER_START^MDC", "500", ML[1])], "block", "WG-INF-029"),
    ):
        c.add(what, message(cid(), [(hydm(), after)]), verdict, rule)
    # The basal rate stays a rate beside a loading dose: 10 mL/h is 10 mg/h
    # (max 4), with a duration making rate x duration the 2 mg loading dose.
    c.add("PCA basal above the limit beside a loading dose and its duration", message(cid(), [(hydm("10"), [f"TQ1|1||||||||||||720^s^UCUM", demand, lockout(), loading])]), "block", "WG-INF-010")
    c.add("a lockout beside an intermittent dose, no demand dose", message(cid(), [(hydm(), [obx(1, "158023^MDC_DOSE_INTERMITTENT^MDC", "1", MG[1]), lockout()])]), "block", "WG-INF-039")
    c.add("PCA said to be a bolus (CH)", message(cid(), [(hydm(), [demand, lockout()])], orc="CH"), "block", "WG-INF-039")

    # --- Multistep (RXG-1 numbers the steps) ------------------------------------------
    total = lambda t: f"OBX|9|NM|0^MDCX_INFUS_TOTAL_NUM_STEPS^MDC||{t}||||||F"
    c.add("two steps at one concentration written two ways", message(cid(), [(heparin(10), []), (heparin(5, f1="2", strength="100", volume="1"), [])]), "allow")
    c.add("cyclic TPN-like steps 1..5", message(cid(), [(heparin(r, f1=str(i + 1)), []) for i, r in enumerate((2, 4, 8, 4, 2))]), "allow")
    c.add("two steps numbered 1 and 2 with their total", message(cid(), [(heparin(10, vtbi=20), []), (heparin(5, f1="2"), [total(2)])]), "allow")
    for what, gives in (
        ("two steps both numbered 1", [(heparin(10), []), (heparin(5), [])]),
        ("steps numbered 1 and 3", [(heparin(10), []), (heparin(5, f1="3"), [])]),
        ("steps numbered 2 then 1", [(heparin(10, f1="2"), []), (heparin(5), [])]),
        ("a total of 3 for two steps", [(heparin(10), []), (heparin(5, f1="2"), [total(3)])]),
        ("a lone step of a total of 2", [(heparin(10), [total(2)])]),
        ("step 2 at another concentration", [(heparin(10), []), (heparin(5, f1="2", strength="2500"), [])]),
        ("step 2 another drug", [(heparin(10), []), (insulin(5).replace("RXG|1|", "RXG|2|", 1), [])]),
        ("step 2 a loading dose", [(heparin(10), []), (heparin(5, f1="2"), ["OBX|8|ST|158037^MDC_INFUS_ORDER_STEP_TYPE^MDC||loading-dose||||||F"])]),
        ("step 2 with a loading dose parameter", [(heparin(10), []), (heparin(5, f1="2"), [obx(8, "158018^MDC_DOSE_LOADING^MDC", "500", U[1])])]),
        ("steps at 100 and 10 U/mL stated by OBX", [(rxg(f1="1", f4="HEP^heparin^LOCAL", f15="10", f16=ML_H[1]), [obx(1, "157760^MDC_CONC_DRUG^MDC", "100", "U/mL^U/mL^UCUM")]),
                                                    (rxg(f1="2", f4="HEP^heparin^LOCAL", f15="10", f16=ML_H[1]), [obx(1, "157760^MDC_CONC_DRUG^MDC", "10", "U/mL^U/mL^UCUM")])]),
        ("a total under the MDC spelling that is not the steps sent", [(heparin(10), []), (heparin(5, f1="2"), ["OBX|9|NM|0^MDC_INFUS_TOTAL_NUM_STEPS^MDC||3||||||F"])]),
    ):
        c.add(f"multistep: {what}", message(cid(), gives), "block", "WG-INF-047")

    # A multistep programme runs every step: their doses add up (found by a
    # review, session 34: each step passed its dose limit alone).
    hep_dose = lambda step, u, *obx_: (rxg(f1=str(step), f4="HEP^heparin^LOCAL", f15=u, f16=U[1], f17="25000", f18=U[1], f23="250", f24=ML[1]), list(obx_))  # noqa: E731
    loading = "OBX|1|ST|158037^MDC_INFUS_ORDER_STEP_TYPE^MDC||loading-dose||||||F"
    c.add("multistep: a 9000 U loading step then an unlabelled 9000 U step (18 000 U)",
          message(cid(), [hep_dose(1, "9000", loading), hep_dose(2, "9000")]), "block", "WG-INF-011")
    c.add("multistep: three unlabelled 9000 U heparin steps",
          message(cid(), [hep_dose(1, "9000"), hep_dose(2, "9000"), hep_dose(3, "9000")]), "block", "WG-INF-011")
    c.add("multistep: a 4000 U loading step then 3000 U (7000 U, within 10 000)",
          message(cid(), [hep_dose(1, "4000", loading), hep_dose(2, "3000")]), "allow")
    vanc_step = lambda step, mg: (rxg(f1=str(step), f4="VANC^vancomycin^LOCAL", f15=mg, f16=MG[1]), [])  # noqa: E731
    c.add("multistep: vancomycin 2000 mg + 2000 mg (4000 mg)", message(cid(), [vanc_step(1, "2000"), vanc_step(2, "2000")]), "block", "WG-INF-011")
    c.add("multistep: vancomycin 1500 mg + 1000 mg (2500 mg, over the soft limit)", message(cid(), [vanc_step(1, "1500"), vanc_step(2, "1000")]), "alert", "WG-INF-013")
    c.add("multistep: vancomycin 1000 mg + 1000 mg (2000 mg)", message(cid(), [vanc_step(1, "1000"), vanc_step(2, "1000")]), "allow")
    gent_step = lambda step: (rxg(f1=str(step), f4="GENT^gentamicin^LOCAL", f15="500", f16=MG[1]), [])  # noqa: E731
    c.add("multistep: gentamicin 500 mg + 500 mg (a dose-only drug, 600 mg limit)", message(cid(), [gent_step(1), gent_step(2)]), "block", "WG-INF-011")
    c.add("multistep: a 4000 U loading step then a continuous 10 mL/h step",
          message(cid(), [hep_dose(1, "4000", loading), (heparin(10, f1="2"), [])]), "allow")

    c.add("multistep: two orders each numbering its give 1", message(cid(), [(heparin(10), [])], post=("ORC|RE|X9^EHR", heparin(5), "RXR|^IV^HL70162")), "block", "WG-INF-047")
    c.add("two orders of one drug and concentration, gives numbered 1 and 2", message(cid(), [(heparin(10), [])], post=("ORC|RE|X10^EHR", heparin(5, f1="2"), "RXR|^IV^HL70162")), "allow")

    # --- Ordinary orders a review found refused ------------------------------------
    gent_pb = lambda ml: rxg(f1="1", f4="GENT^gentamicin^LOCAL", f5=ml, f7=ML[0], f15="200", f16=ML_H[0], f17="400", f18=MG[0], f23="100", f24=ML[0])
    c.add("gentamicin piggyback: 100 mL of 4 mg/mL at 200 mL/h", message(cid(), [(gent_pb("100"), [])]), "allow")
    c.add("gentamicin piggyback with its dose and duration", message(cid(), [(gent_pb("100"), ["TQ1|1|||||30^" + MIN_CQ, obx(1, "158023^MDC_DOSE_INTERMITTENT^MDC", "400", MG[0])])]), "allow")
    c.add("gentamicin piggyback: 200 mL of 4 mg/mL (800 mg)", message(cid(), [(gent_pb("200"), [])]), "block", "WG-INF-011")
    c.add("gentamicin: 1000 mL of 4 mg/mL beside a stated 1 mg dose", message(cid(), [(gent_pb("1000"), [obx(1, "158023^MDC_DOSE_INTERMITTENT^MDC", "1", MG[0])])]), "block", "WG-INF-011")
    c.add("heparin with the same start in ORC-7 and TQ1-7, ORC-7 priority PRN", message(cid(), [(heparin(10), ["TQ1|1||||||20261204101500"])]).replace("^EHR\r", "^EHR|||||^^^20261204101500^^PRN\r", 1), "block", "WG-INF-042")
    c.add("heparin with the same start in ORC-7 and TQ1-7", message(cid(), [(heparin(10), ["TQ1|1||||||20261204101500"])]).replace("^EHR\r", "^EHR|||||^^^20261204101500\r", 1), "allow")
    c.add("heparin with different starts in ORC-7 and TQ1-7", message(cid(), [(heparin(10), ["TQ1|1||||||20261204101500"])]).replace("^EHR\r", "^EHR|||||^^^20261204181500\r", 1), "block", "WG-INF-042")

    # --- Session 29's adversarial review: every part of a coded value, everywhere -----
    # A duration's unit, a concentration's unit and a parameter's identifier read
    # from every part a receiver may read (CWE-9 original text, CWE-10/11 second
    # alternate), as rates, drugs and weights already were.
    vol250 = dict(f1="1", f4="HEP^heparin^LOCAL", f5="250", f7=ML[0], f17="25000", f18=U[1], f23="250", f24=ML[1])
    c.add("heparin 250 mL over 25 h (TQ1-13)", message(cid(), [(rxg(**vol250), ["TQ1|1||||||||||||25^h&h&UCUM"])]), "allow")
    for unit in ("h&h&UCUM&&&&&&min", "h&h&UCUM&&&&&&&" + MIN_CQ, "h&h&UCUM&&&&&&&min&min&UCUM"):
        c.add(f"heparin 250 mL over 25 {unit} (TQ1-13)", message(cid(), [(rxg(**vol250), [f"TQ1|1||||||||||||25^{unit}"])]), "block", "WG-INF-016")
        c.add(f"heparin 250 mL over 25 {unit} (TQ1-6)", message(cid(), [(rxg(**vol250), [f"TQ1|1|||||25^{unit}"])]), "block", "WG-INF-016")
    conc_only = rxg(f1="1", f4="HEP^heparin^LOCAL", f15="10", f16=ML_H[1])
    c.add("heparin 10 mL/h on an MDC_CONC_DRUG of 100 U/mL", message(cid(), [(conc_only, [obx(1, "157760^MDC_CONC_DRUG^MDC", "100", "U/mL^U/mL^UCUM")])]), "allow")
    for unit in ("U/mL^U/mL^UCUM^^^^^^units/L", "U/mL^U/mL^UCUM^^^^^^^U/L^U/L^UCUM", "U/mL^U/mL^UCUM^^^^^^kU/mL"):
        c.add(f"heparin 10 mL/h on an MDC_CONC_DRUG of 100 {unit}", message(cid(), [(conc_only, [obx(1, "157760^MDC_CONC_DRUG^MDC", "100", unit)])]), "block", "WG-INF-016")
    for unit in ("U/mL^U/mL^UCUM^^^^^^kU/mL", "U/mL^U/mL^UCUM^^^^^^^kU/mL^kU/mL^UCUM", "U/mL^U/mL^UCUM^^^^^^1000 units/mL"):
        c.add(f"heparin 10 mL/h of 100 {unit} (RXG-17/18, no RXG-23/24)", message(cid(), [(rxg(f1="1", f4="HEP^heparin^LOCAL", f15="10", f16=ML_H[1], f17="100", f18=unit), [])]), "block", "WG-INF-016")
    two_reads = obx(3, "158018^MDC_DOSE_LOADING^MDC^^^^^^^158017^MDC_DOSE_PCA_PATIENT^MDC", "2", MG[1])
    c.add("PCA loading dose whose second alternate names the demand dose", message(cid(), [(hydm(), [demand, lockout(), two_reads])]), "block", "WG-INF-016")
    # A give code's text naming the drug after a salt, a brand, a base solution or
    # "premix" is the drug (a review found these refused when the name had to lead).
    for drug, text, rate, unit in (
        ("HEP", "Sodium heparin 25,000 units/250 mL", "10", ML_H[1]),
        ("HEP", "Premix heparin 25,000 units in 250 mL", "10", ML_H[1]),
        ("HEP", "Dextrose 5% 250 mL with heparin 25,000 units", "10", ML_H[1]),
        ("HEP", "25,000 units heparin in D5W", "10", ML_H[1]),
        ("INS", "Regular insulin 100 units/100 mL", "5", U_H[1]),
        ("INS", "HumuLIN R 100 units insulin in NS 100 mL", "5", U_H[1]),
        ("HEP", "Heparin sodium (porcine) 25,000 units in dextrose 5% 250 mL", "10", ML_H[1]),
        ("HEP", "Heparin 25,000 units in 0.45% sodium chloride 250 mL", "10", ML_H[1]),
        ("INS", "Insulin regular human 100 units in 0.9% sodium chloride 100 mL", "5", U_H[1]),
        ("INS", "Insulin (regular) 1 unit/mL in water for injection", "5", U_H[1]),
        ("INS", "Insulin regular human (HumuLIN R) 100 units in 1 L NS", "5", U_H[1]),
        ("OXY", "oxytocin (PITOCIN) 30 units in 500 mL LR infusion", "2", "mU/min^mU/min^UCUM"),
        ("OXY", "Pitocin (oxytocin) 30 units/500 mL", "2", "mU/min^mU/min^UCUM"),
    ):
        f = dict(f1="1", f4=f"{drug}^{text}^LOCAL", f15=rate, f16=unit)
        if drug == "HEP":
            f.update(f17="25000", f18=U[1], f23="250", f24=ML[1])
        c.add(f"give code text {text!r}", message(cid(), [(rxg(**f), [])]), "allow")
    # A text naming a library drug and also another drug or product outside the
    # library: the nurse may read one, the pump the other (found by an adversarial
    # review: each was forwarded under the library drug's limits).
    for drug, text in (
        ("INS", "Insulin glargine 100 units/mL"),
        ("INS", "insulin LISPRO 100 units in 100 mL"),
        ("INS", "Insulin aspart (NovoLOG) 100 units/100 mL"),
        ("INS", "Insulin NPH human 100 units/mL"),
        ("INS", "Lantus (insulin) 100 units/mL"),
        ("INS", "Insulin degludec"),
        ("HEP", "Enoxaparin (low molecular weight heparin) 100 mg/mL"),
        ("HEP", "Morphine 1 mg/mL in heparin lock"),
        ("HEP", "Heparin 25,000 units with fentanyl 2 mcg/mL"),
        ("HEP", "Dalteparin/heparin"),
        ("HEP", "heparin-argatroban bridge"),
        ("HEP", "HEPARIN then MIDAZOLAM 1 mg/mL"),
        ("INS", "Insulin glargine-yfgn 100 units/mL"),
        ("INS", "insulin aspart-szjj"),
        ("INS", "Insulin (Humulin N) 100 units/mL"),
        ("INS", "NovoLIN N insulin"),
        ("INS", "Insulin 70/30 human"),
        ("INS", "Insulin regular U-500 (HumuLIN R U-500)"),
        ("INS", "Insulin degludec-liraglutide"),
        ("INS", "Soliqua 100/33 (insulin glargine and lixisenatide)"),
        ("INS", "Insulin 100 units and heparin 1000 units"),
        ("HEP", "Heparin 25,000 units in insulin"),
        ("HEP", "Heparin 25000 units with potassium chloride 20 mEq"),
        ("HEP", "heparin (danaparoid) 750 units"),
        ("HEP", "heparin or dabigatran"),
    ):
        f = dict(f1="1", f4=f"{drug}^{text}^LOCAL", f15="10" if drug == "HEP" else "5", f16=ML_H[1] if drug == "HEP" else U_H[1])
        if drug == "HEP":
            f.update(f17="25000", f18=U[1], f23="250", f24=ML[1])
        c.add(f"give code text naming another drug {text!r}", message(cid(), [(rxg(**f), [])]), "block", "WG-INF-016")
        # The same words in the original text (CWE-9) are read too.
        f["f4"] = f"{drug}^{'heparin' if drug == 'HEP' else 'insulin'}^LOCAL^^^^^^{text}"
        c.add(f"give code original text naming another drug {text!r}", message(cid(), [(rxg(**f), [])]), "block", "WG-INF-016")
    # --- A third review: diluents read first, more insulins and anticoagulants,
    # words split by invisible characters, escapes or dashes ------------------------
    def give(drug, text):
        rate = {"HEP": ("10", ML_H[1]), "INS": ("5", U_H[1]), "KCL": ("10", "mEq/h^mEq/h^UCUM"),
                "BUPI": ("10", "mg/h^mg/h^UCUM"), "HYDM": ("1", "mg/h^mg/h^UCUM"),
                "PROP": ("30", MCG_KG_MIN[1])}[drug]
        f = dict(f1="1", f4=f"{drug}^{text}^LOCAL", f15=rate[0], f16=rate[1])
        if drug == "HEP":
            f.update(f17="25000", f18=U[1], f23="250", f24=ML[1])
        return rxg(**f)
    for drug, text in (
        ("KCL", "NS with KCl 20 mEq"),
        ("KCL", "dextrose 5 % and 0.45 % NaCl with KCl 20 mEq/L infusion"),
        ("KCL", "D5W with potassium chloride 20 mEq/L"),
        ("KCL", "sodium chloride 0.9% with potassium chloride 20 mEq/L"),
        ("INS", "NS 100 mL with insulin regular 100 units"),
        ("HEP", "heparin 25,000 units in normal saline 250 mL"),
        ("HEP", "heparin 25,000 units in sterile water 250 mL"),
        ("HEP", "heparin 25,000 unit/250 mL (100 unit/mL) in 0.45 % sodium chloride infusion"),
        ("INS", "Insulin regular human (HumuLIN R) 100 units in NS 100 mL"),
    ):
        c.add(f"give code text with a base solution {text!r}", message(cid(), [(give(drug, text), [])]), "allow")
    for drug, text in (
        ("INS", "insulin (Humulin-N)"), ("INS", "insulin (Humulin I)"), ("INS", "insulin (Insulatard)"),
        ("INS", "insulin (Insuman Basal)"), ("INS", "insulin zinc suspension"), ("INS", "insulin (Humulin M3)"),
        ("INS", "insulin human 30/70"), ("INS", "insulin (Mixtard 30)"), ("INS", "insulin (NovoMix 30)"),
        ("INS", "Novolin 70-30 insulin"), ("INS", "insulin 70 / 30"), ("INS", "insulin 70\u204430"),
        ("INS", "insulin regular U\u2011500"), ("INS", "insulin regular U\u2013500"), ("INS", "insulin regular U 500"),
        ("INS", "insulin regular U-500/mL"), ("INS", "insulin regular concentrated 500 unit/mL"),
        ("INS", "insulin aspart (Kirsty)"), ("INS", "insulin (Merilog)"),
        ("INS", "insulin gl\u200bargine"), ("INS", "insulin gla\u00adrgine"), ("INS", "insulin glar-gine"),
        ("INS", "insulin (Lan-tus)"), ("INS", "insulin (Lan\u2010tus)"),
        ("HEP", "heparin (LMW) 100 mg/mL"), ("HEP", "heparin, low molecular weight"), ("HEP", "heparin then Angiomax"),
        ("HEP", "heparin bridge to Eliquis"), ("BUPI", "bupivacaine 0.1% with Sublimaze 2 mcg/mL"),
        ("HYDM", "HYDROmorphone (Dilaudid-HP) 10 mg/mL"), ("PROP", "propofol with Versed"),
    ):
        c.add(f"give code text naming another drug {text!r}", message(cid(), [(give(drug, text), [])]), "block", "WG-INF-016")
    # A fourth review: texts refused that a real EHR sends, and forms still missed.
    for drug, text in (
        ("INS", "insulin infusion (DKA protocol) 0.1 unit/kg/h, wt 62.38 kg"),
        ("INS", "insulin regular 1 unit/mL, wt 70.30 kg"),
        ("INS", "insulin 25.75 units in 100 mL"),
        ("INS", "insulin regular, 10-90 min titration"),
        ("INS", "insulin regular 50/50 mL"),
        ("INS", "insulin regular human 100 U 200 mL"),
        ("INS", "insulin regular; max U 200/day"),
        ("INS", "insulin regular 1 unit/mL, as part of DKA protocol"),
        ("HEP", "heparin 25,000 units/250 mL as part of ECMO protocol"),
        ("INS", "insulin regular (HUMULIN) I.V."),
        ("HEP", "HEPARIN-D5W 25000 UNIT/250ML"),
        ("KCL", "KCl-NS 20 mEq/L"),
        ("INS", "insulin regular human 100 unit/100 mL (1 unit/mL) in 0.9 % sodium chloride infusion"),
    ):
        c.add(f"give code text a fourth review found refused {text!r}", message(cid(), [(give(drug, text), [])]), "allow")
    for drug, text in (
        ("INS", "insulin regular human 500 units per mL"), ("INS", "insulin regular 500units/mL"),
        ("INS", "insulin regular human 500 unit per mL KwikPen"), ("INS", "(Humulin R) concentrate"),
        ("INS", "insulin regular U  500"), ("INS", "insulin regular U_500"), ("INS", "insulin regular U=500"),
        ("INS", "insulin regular U.500"), ("INS", "insulin 70%/30%"), ("INS", "insulin \\E\\glargine\\E\\"),
        ("INS", "insulin\\E\\Lantus"), ("HEP", "heparin 25000 U \\E\\ enoxaparin"),
        ("INS", "insulin regular 100 units in NS 100 mL with potas\u200bsium chloride 20 mEq"),
        ("INS", "insulin regular 100 units in NS 100 mL with potassium-chloride 20 mEq"),
        ("HEP", "heparin 25000 units with K\u200bCl 20 mEq"),
    ):
        c.add(f"give code text a fourth review found forwarded {text!r}", message(cid(), [(give(drug, text), [])]), "block", "WG-INF-016")
    for seg in ("OBX|1|XCN|99001^ORDERED_BY^99VND||1234^Day^Mary||||||F", "OBX|1|CWE|99002^FLAG^99VND||H^H^HL70078||||||F",
                "OBX|1|CWE|99002^INTERVAL^99VND||MIN^Minutes||||||F", "OBX|1|EI|99004^PUMP^99VND||SN12345^IU^99VND||||||F",
                "OBX|1|ST|99005^NOTE^99VND||See note^min||||||F", "OBX|1|SN|99006^RATIO^99VND||>^100||||||F"):
        c.add(f"heparin with an unread OBX whose value's second component is no unit {seg!r}",
              message(cid(), [(heparin(10), [seg])]), "allow")
    for unit in ("U{ten}/h", "U{dozen}/h", "U{bodyweight}/h", "U{weight}/h"):
        c.add(f"insulin 5 {unit}", message(cid(), [(insulin(5, f"{unit}^{unit}^UCUM"), [])]), "block", "WG-INF-004")
    c.add("propofol 500 ug{patient weight}/min", message(cid(), [(propofol(500, "ug{patient weight}/min^ug{patient weight}/min^UCUM"), [weight("80")])]), "block", "WG-INF-004")
    # A fifth review: a combination entry's own texts, laboratory results beside the
    # order, concentrated insulins in other words, category words.
    epi = "RXR|EP^Epidural^HL70162"
    for text in ("bupivacaine-fentanyl 0.1%-2 mcg/mL epidural", "bupivacaine fentanyl epidural 250 mL"):
        c.add(f"combination epidural under its own entry {text!r}",
              message(cid(), [(rxg(f1="1", f4=f"BUPIFENT^{text}^LOCAL", f15="10", f16=ML_H[1]), [])], rxr=(epi,)), "allow")
    for seg in ("OBX|1|NM|14979-9^aPTT^LN||45.2|s^s^UCUM|||||F", "OBX|1|NM|5902-2^PT^LN||12.5|s^s^UCUM|||||F",
                "OBX|1|NM|3274-2^Heparin level^LN||0.4|[IU]/mL^[IU]/mL^UCUM|||||F"):
        c.add(f"heparin with a laboratory result beside it {seg!r}", message(cid(), [(heparin(10), [seg])]), "allow")
    c.add("vancomycin with a creatinine clearance beside it",
          message(cid(), [(rxg(f1="1", f4="VANC^vancomycin^LOCAL", f5="1000", f7=MG[1]), ["OBX|1|NM|2164-2^CrCl^LN||62|mL/min^mL/min^UCUM|||||F"])]), "allow")
    c.add("vincristine (chemotherapy, hazardous)",
          message(cid(), [(rxg(f1="1", f4="VINC^vincristine (chemotherapy, hazardous)^LOCAL", f5="1.4", f7=MG[1]), [])], rxr=("RXR|IV^Intravenous^HL70162",)), "allow")
    for drug, text in (
        ("INS", "insulin (Protaphane) 100 IU/mL"), ("INS", "insulin human Berlinsulin H Basal"),
        ("INS", "insulin icodec (Awiqli)"), ("INS", "insulin regular 500 I.E./ml"), ("INS", "insulin regular 500 IU per 1 mL"),
        ("INS", "insulin regular 500 international units/mL"), ("INS", "insulin regular 500 units in 1 mL"),
        ("INS", "insulin regular 10,000 units/20 mL vial"), ("INS", "insulin regular 100 units/0.2 mL"),
    ):
        c.add(f"give code text a fifth review found forwarded {text!r}", message(cid(), [(give(drug, text), [])]), "block", "WG-INF-016")
    for drug, text in (("INS", "insulin regular 100 units/mL vial"), ("INS", "insulin regular 100 units/100 mL"),
                       ("INS", "insulin regular 1 unit/mL in 100 mL NS"), ("INS", "insulin regular human 250 units in 250 mL")):
        c.add(f"give code text at a usual strength {text!r}", message(cid(), [(give(drug, text), [])]), "allow")
    # A sixth review: lab codes beside vendor codes, combination texts, strengths.
    for ident in ("3173-2^aPTT^LN^VDUR^Infusion duration^99ALARIS", "VRATE^Infusion rate^99ALARIS^2164-2^CrCl^LN",
                  "2164-2^CrCl^LN^^^^^^^VRATE^Infusion rate^99ALARIS", "2164-2^^LN^^^^^^Infusion rate"):
        c.add(f"heparin with a vendor's rate beside a laboratory code {ident!r}",
              message(cid(), [(heparin(10, vtbi=250), [obx(1, ident, "4100", "mL/h^mL/h^UCUM")])]), "block", "WG-INF-043")
    for text in ("bupivacaine 0.1% + fentaNYL 2 mcg/mL epidural 250 mL", "bupivacaine (PF) 0.125% and fentanyl 2 mcg/mL in NS 100 mL",
                 "fentaNYL 2 mcg/mL-bupivacaine 0.125% in NS 100 mL epidural"):
        c.add(f"combination epidural text under its own entry {text!r}",
              message(cid(), [(rxg(f1="1", f4=f"BUPIFENT^{text}^LOCAL", f15="10", f16=ML_H[1]), [])], rxr=(epi,)), "allow")
    # Words of a one-drug name standing apart are not that drug.
    c.add("potassium chloride code with a potassium phosphate text",
          message(cid(), [(give("KCL", "potassium phosphate 15 mmol in sodium chloride 250 mL"), [])]), "block", "WG-INF-016")
    c.add("plain bupivacaine code with a combination text",
          message(cid(), [(rxg(f1="1", f4="BUPI^bupivacaine 0.1% + fentanyl 2 mcg/mL^LOCAL", f15="10", f16="mg/h^mg/h^UCUM"), [])], rxr=(epi,)), "block", "WG-INF-016")
    for text in ("insulin regular 500 units/cc", "insulin regular 500 units per milliliter", "insulin regular 500 UI/mL",
                 "Insulin human 500 Einheiten/ml", "Insulin 500 I.E. in 1,0 ml", "insulin regular 500 units.mL-1",
                 "insulin regular 500 units mL-1", "insulin regular 20 000 units/40 mL", "Insulin 20.000 I.E./40 ml",
                 "insulin regular 0.5 units/\u00b5L"):
        c.add(f"give code text naming a concentrated insulin {text!r}", message(cid(), [(give("INS", text), [])]), "block", "WG-INF-016")
    for text in ("Insulin 50 I.E. ad 50 ml NaCl 0,9%", "insulin regular 100 units/mL, 3 mL pen", "insulin regular 1,000 units/10 mL vial"):
        c.add(f"give code text at a usual strength {text!r}", message(cid(), [(give("INS", text), [])]), "allow")
    # Units a pump server reads on a vendor's OBX under the give.
    vnd = "99003^VND_INFUSION_RATE^99VND"
    for value, unit, rule in (("10", "MU/min", "WG-INF-014"), ("10", "MIU/H", "WG-INF-014"), ("500", "cm3/h", "WG-INF-043"),
                              ("500", "ccs/hr", "WG-INF-004"), ("500", "mL\u00b7h\u207b\u00b9", "WG-INF-004"),
                              ("2", "wk", "WG-INF-004"), ("500", "ms", "WG-INF-004"), ("500", "local&mL/h", "WG-INF-004"),
                              ("500", "4::3122", "WG-INF-004")):
        c.add(f"heparin with a vendor's rate code in {unit!r}",
              message(cid(), [(heparin(10, vtbi=250), [obx(1, vnd, value, unit)])]), "block", rule)
    for seg in (f"OBX|1|CQ|{vnd}||10^MU/min|||||F", f"OBX|1|CQ|{vnd}||10^mL/h|%||||F",
                f"OBX|1|NM|{vnd}||10^mL/h|||||F", f"OBX|1|CQ|{vnd}||5~10^mL/h|||||F"):
        c.add(f"heparin with a vendor's quantity in the value {seg!r}",
              message(cid(), [(heparin(10, vtbi=250), [seg])]), "block", "WG-INF-043")
    # Annotations that a reader may take for a unit or a magnitude are refused.
    c.add("propofol 500 ug{per kg}/min", message(cid(), [(propofol(500, "ug{per kg}/min^ug{per kg}/min^UCUM"), [weight("80")])]), "block", "WG-INF-004")
    c.add("insulin 5 U{thousand}/h", message(cid(), [(insulin(5, "U{thousand}/h^U{thousand}/h^UCUM"), [])]), "block", "WG-INF-004")
    c.add("insulin 5 m{ega}U/h", message(cid(), [(insulin(5, "m{ega}U/h^m{ega}U/h^UCUM"), [])]), "block", "WG-INF-004")
    # The order type and the repeat pattern read every part too.
    step = lambda kind: f"OBX|1|ST|158037^MDC_INFUS_ORDER_STEP_TYPE^MDC||{kind}||||||F"
    for kind in ("continuous^^^^^^^^clinician-dose", "continuous^^^^^^^^^clinician-dose^clinician-dose"):
        c.add(f"heparin 10 mL/h, order type {kind}", message(cid(), [(heparin(10), [step(kind)])]), "block", "WG-INF-017")
    c.add("heparin, order type text only in the second alternate", message(cid(), [(heparin(10), [step("^^^^^^^^^loading-dose^loading-dose")])]), "block", "WG-INF-039")
    for pattern in ("ONCE&Once&HL70335&&&&&&Q6H", "ONCE&Once&HL70335&&&&&&&Q6H&Every 6 hours&HL70335"):
        c.add(f"heparin 10 mL/h, TQ1-3 {pattern}", message(cid(), [(heparin(10), [f"TQ1|1||{pattern}"])]), "block", "WG-INF-042")
    # Original texts that paraphrase the code are read, not refused.
    for unit in ("h&h&UCUM&&&&&&hrs", "h&h&UCUM&&&&&&hour(s)"):
        c.add(f"heparin 250 mL over 25 {unit} (TQ1-13)", message(cid(), [(rxg(**vol250), [f"TQ1|1||||||||||||25^{unit}"])]), "allow")
    c.add("heparin 10 mL/h on an MDC_CONC_DRUG of 100 U/mL, 'units per mL' as original text", message(cid(), [(conc_only, [obx(1, "157760^MDC_CONC_DRUG^MDC", "100", "U/mL^U/mL^UCUM^^^^^^units per mL")])]), "allow")

    # --- A third review: the RXR's other fields, more route words, unread quantities ---
    for rxr, verdict in (
        ("RXR|IV^Intravenous^HL70162|IT^Intrathecal space^99SITE", "block"),
        ("RXR|IV^Intravenous^HL70162|||IT^Intrathecal injection", "block"),
        ("RXR|IV^Via EVD^HL70162", "block"),
        ("RXR|IV^Intravenous^HL70162|LA^Left arm^HL70163", "allow"),
        # A warning naming another route is refused (a negation may govern
        # another word: "Not IV - intrathecal"), as is "it" in any case.
        ("RXR|IV^Intravenous - NOT FOR INTRATHECAL USE^HL70162", "block"),
        ("RXR|IV^Not IV - intrathecal^HL70162", "block"),
        ("RXR|IV^iv/it^HL70162", "block"),
        ("RXR|IV^into csf^HL70162", "block"),
        ("RXR|IV^Intravenous^HL70162|||IVP^IV push^HL70165~IT^Intrathecal injection^HL70165", "block"),
    ):
        c.add(f"vincristine with {rxr}", message(cid(), [(vinc, [])], rxr=(rxr,)), verdict, "WG-INF-045" if verdict == "block" else None)
    c.add("bupivacaine in a lumbar epidural", message(cid(), [(bupi, [])], rxr=("RXR|EP^Lumbar epidural^HL70162",)), "allow")
    c.add("bupivacaine epidural with a warning against IV lines", message(cid(), [(bupi, [])], rxr=("RXR|EP^Epidural^HL70162||||^DO NOT CONNECT TO IV LINES",)), "allow")
    c.add("heparin with the pump's identity and a line type under the give",
          message(cid(), [(rxg(**vol250, f15="10", f16=ML_H[1]), ["OBX|1|CWE|99002^VND_LINE_TYPE^99VND||CVC^Central venous catheter^99VND||||||F",
                                                                  "OBX|2|EI|69986^MDC_DEV_PUMP_INFUS_VMD^MDC|1.0.0.0|PUMP-0042^ACME^1.2.3^ISO||||||F"])]), "allow")
    for what, seg, rule in (
        ("a vendor duration as CQ", "OBX|1|CQ|99001^VND_INFUSION_DURATION^99VND||1^min&min&UCUM||||||F", "WG-INF-043"),
        ("a vendor duration whose unit's parts disagree", "OBX|1|NM|99001^VND_INFUSION_DURATION^99VND||1|min^^^^^^^^1 min|||||F", "WG-INF-016"),
        ("a vendor duration in 'mins.'", "OBX|1|NM|99001^VND_INFUSION_DURATION^99VND||1|mins.|||||F", "WG-INF-043"),
    ):
        c.add(f"heparin 250 mL at 10 mL/h with {what}", message(cid(), [(rxg(**vol250, f15="10", f16=ML_H[1]), [seg])]), "block", rule)
    c.add("heparin with 'mls' and 'USP units' as original texts", message(cid(), [(rxg(**{**vol250, "f7": "mL^mL^UCUM^^^^^^mls", "f18": "U^U^UCUM^^^^^^USP units"}, f15="10", f16=ML_H[1]), [])]), "allow")

    # Where else a receiver may read the patient's care area (found by an
    # adversarial review: a temporary location in the NICU was judged by the
    # adult ICU's limits), and delimiters that split a unit.
    hep150 = rxg(f1="1", f4="HEP^heparin^LOCAL", f15="150", f16=U_H[1])
    for pv1, verdict, rule in (
        ("PV1||I|||||||||NICU^1^1", "block", "WG-INF-032"),
        ("PV1||I|ICU^1^1||||||||NICU^1^1", "block", "WG-INF-032"),
        ("PV1||I|ICU^1^1||||||||nicu", "block", "WG-INF-032"),
        ("PV1||I|ICU^^^^^^^^NICU", "block", "WG-INF-032"),
        ("PV1||I|ICU^1^1|||||||NICU", "block", "WG-INF-032"),
        ("PV1||I|ICU^1^1||||||||NICU#", "block", "WG-INF-032"),
        ("PV1||I|ICU^1^1||||||||ICU^2^1~NICU^1^1", "block", "WG-INF-015"),
        ("PV1||I|ICU^1^1||||||||N\\X49\\CU^1^1", "block", "WG-INF-019"),
        ("PV1||I|ICU^1^1||||||||MICU^2^1", "allow", None),
        ("PV1||I|ICU^1^1|||NICU^1^1", "allow", None),
        ("PV1||I|ICU^1^1|||||||MED|ICU^3^1", "allow", None),
    ):
        c.add(f"heparin 150 U/h with {pv1}", message(cid(), [(hep150, [])], pv1=pv1), verdict, rule)
    for enc in ("^~\\/", "^~/&", "/~\\&", "^/\\&", "^~\\[", "^~\\{", "^~\\'", "^~\\*", "^~\\%", "^~\\(", "%~\\&"):
        c.add(f"heparin 10 mL/h with MSH-2 {enc!r}",
              message(cid(), [(heparin(10), [])]).replace("MSH|^~\\&|", f"MSH|{enc}|", 1), "block", "WG-HL7-P03")

    # Valid UCUM units a review found refused: the USP unit, cm3, dL.
    c.add("heparin 25000 [USP'U] in 250 mL at 10 mL/h", message(cid(), [(heparin(10, s_unit="[USP'U]^USP units^UCUM"), [])]), "allow")
    c.add("heparin 25000 [USP'U] in 250 cm3 at 10 cm3/h", message(cid(), [(heparin(10, rate_unit="cm3/h^cm3/h^UCUM", s_unit="[USP'U]^USP units^UCUM", v_unit="cm3^cm3^UCUM"), [])]), "allow")
    c.add("heparin 25000 U in 2.5 dL at 10 mL/h", message(cid(), [(heparin(10, volume="2.5", v_unit="dL^dL^UCUM"), [])]), "allow")
    c.add("heparin 25000 U in 2.5 dL at 50 mL/h (5000 U/h)", message(cid(), [(heparin(50, volume="2.5", v_unit="dL^dL^UCUM"), [])]), "block", "WG-INF-010")
    c.add("heparin 25000 [USP'U] in 250 mL at 100 mL/h (10000 U/h)", message(cid(), [(heparin(100, s_unit="[USP'U]^USP units^UCUM"), [])]), "block", "WG-INF-010")

    # A weight as a structured numeric (SN): one number is read, a comparator
    # or a range is no weight.
    for value, verdict, rule in (("^80", "allow", None), ("=^80", "allow", None), ("^80^^", "allow", None),
                                 ("<^80", "block", "WG-INF-020"), (">^80", "block", "WG-INF-020"),
                                 ("^70^-^90", "block", "WG-INF-020"), ("^70^:^2", "block", "WG-INF-020"),
                                 ("^", "block", "WG-INF-020"), ("^abc", "block", "WG-INF-020")):
        c.add(f"propofol 25 mcg/kg/min with an SN weight {value!r}",
              message(cid(), [(propofol(25), [f"OBX|1|SN|{WEIGHT}||{value}|{KG[1]}|||||F"])]), verdict, rule)
    c.add("propofol 25 mcg/kg/min with an SN weight of 8 kg (a 25x dose for the ordered patient)",
          message(cid(), [(propofol(25), [f"OBX|1|SN|{WEIGHT}||^8|{KG[1]}|||||F"])]), "block", "WG-INF-031")

    # A point of care a receiver matching by word or prefix reads as the NICU's.
    for poc in ("*NICU", "-NICU", "(NICU)", "NICU 2", "NICU-2", "NICU2", "NICU_A", "NICU.A", "NICU:1",
                "NICU/PICU", "N-ICU", "N ICU", "nicu 2"):
        c.add(f"heparin 150 U/h at point of care {poc!r}", message(cid(), [(hep150, [])], pv1=f"PV1||I|{poc}^1^1"), "block", "WG-INF-032")
    c.add("heparin 150 U/h with PV1-11 'NICU 2'", message(cid(), [(hep150, [])], pv1="PV1||I|ICU^1^1||||||||NICU 2^1^1"), "block", "WG-INF-032")
    # The give's own locations (found by an adversarial review, session 33):
    # RXG-29 deliver-to patient location, RXG-11 dispense-to location.
    for f, where in (("f29", "RXG-29"), ("f11", "RXG-11")):
        hep150_at = rxg(f1="1", f4="HEP^heparin^LOCAL", f15="150", f16=U_H[1], **{f: "NICU^1^1"})
        c.add(f"heparin 150 U/h at PV1-3 ICU with {where} NICU", message(cid(), [(hep150_at, [])]), "block", "WG-INF-032")
        c.add(f"heparin 150 U/h with no PV1 and {where} NICU (the adult default otherwise)",
              message(cid(), [(hep150_at, [])], pv1="NTE|1||no visit"), "block", "WG-INF-032")
        c.add(f"heparin 150 U/h at PV1-3 ICU with {where} ICU (the same area)",
              message(cid(), [(rxg(f1="1", f4="HEP^heparin^LOCAL", f15="150", f16=U_H[1], **{f: "ICU^1^1"}), [])]), "allow")
    for pharmacy in ("ICU SATELLITE PHARMACY", "ICU-RX"):
        c.add(f"NICU heparin 90 U/h dispensed to {pharmacy!r} (RXG-11: a pharmacy, read whole)",
              message(cid(), [(rxg(f1="1", f4="HEP^heparin^LOCAL", f15="90", f16=U_H[1], f11=f"{pharmacy}^1^1"), [])],
                      pv1="PV1||I|NICU^1^1"), "allow")
    c.add("heparin 150 U/h with RXG-29 repeated",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin^LOCAL", f15="150", f16=U_H[1], f29="ICU^1^1~NICU^1^1"), [])]), "block", None)
    c.add("heparin 150 U/h with NICU in PV1-3's thirteenth component", message(cid(), [(hep150, [])], pv1="PV1||I|ICU^1^1^^^^^^^^^^NICU"), "block", "WG-INF-032")
    for poc in ("ICU 2", "MICU-2", "ICU^1^1^^^^^^Medical ICU", "4 West^12^1"):
        c.add(f"heparin 150 U/h at point of care {poc!r}", message(cid(), [(hep150, [])], pv1=f"PV1||I|{poc}"), "allow")
    # The location description PV1-3.9 read word by word (review 18: 'NICU bay 3'
    # there was not read; the exact 'NICU' was).
    for desc in ("NICU bay 3", "nicu overflow", "NICU-2 annex", "NICU2 east"):
        c.add(f"heparin 150 U/h at ICU described as {desc!r}",
              message(cid(), [(hep150, [])], pv1=f"PV1||I|ICU^1^1^^^^^^{desc}"), "block", "WG-INF-032")
    for desc in ("Medical ICU bay 3", "ICU 1 window bed", "Bed 4, east wing"):
        c.add(f"heparin 150 U/h at ICU described as {desc!r}",
              message(cid(), [(hep150, [])], pv1=f"PV1||I|ICU^1^1^^^^^^{desc}"), "allow")
    c.add("NICU heparin 50 U/h described as 'Neonatal ICU'",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin", f15="50", f16=U_H[1]), [weight("3")])], pv1="PV1||I|NICU^2^1^^^^^^Neonatal ICU"), "allow")

    # Points of care a receiver normalising Unicode reads as the NICU's.
    for poc in ("\uff2e\uff29\uff23\uff35", "N\u0130CU", "NI\u0301CU"):
        c.add(f"heparin 150 U/h at point of care {poc!r}", message(cid(), [(hep150, [])], pv1=f"PV1||I|{poc}^1^1"), "block", "WG-INF-032")

    # Continuations a receiver joins (HL7 v2.5.1 2.10.2): an ADD segment appends
    # to the segment before it, DSC and MSH-14 point to the next fragment.
    tq1_60 = "TQ1|1||||||20261204100000|20261204110000"
    ns250 = rxg(f1="1", f4="NS^sodium chloride 0.9%^LOCAL", f5="250", f7=ML[1])
    for name, msg in (
        ("ADD continuing PV1 with a NICU point of care", message(cid(), [(hep150, [])], pv1="PV1||I\rADD||NICU^1^1")),
        ("ADD continuing TQ1's end time", message(cid(), [(ns250, [tq1_60, "ADD|+0055"])])),
        ("ADD after a note", message(cid(), [(heparin(10), ["NTE|1||bag label", "ADD|continued"])])),
        ("a DSC continuation pointer", message(cid(), [(heparin(10), [])], post=("DSC|CP1|F",))),
        ("an MSH-14 continuation pointer", message(cid(), [(heparin(10), [])]).replace("|P|2.6\r", "|P|2.6||CP1\r", 1)),
    ):
        c.add(f"heparin: {name}", msg, "block", "WG-INF-049")
    c.add("sodium chloride 250 mL over TQ1 60 minutes (250 mL/h)", message(cid(), [(ns250, [tq1_60])]), "allow")
    # Character sets that read plain ASCII as other characters, unknown sets,
    # and bytes a lenient UTF-8 decoder reads as a carriage return.
    hidden = "NTE|1||bag label+AA0-OBX|2|NM|157784^MDC_FLOW_FLUID_PUMP^MDC||300|265266^MDC_DIM_MILLI_L_PER_HR^MDC|||||F"
    for declared in ("UTF-7", "UNICODE UTF-7", "HZ-GB-2312", "x-unknown", "8859/1~UTF-7"):
        c.add(f"heparin 10 mL/h declaring {declared} with a UTF-7 segment break in a note",
              charset(message(cid(), [(heparin(10), [hidden])]), declared), "block", "WG-HL7-P12")
    for declared in ("", "UNICODE UTF-8", "ISO IR192"):
        for seq in ("\xc0\x8d", "\xe0\x80\x8d", "\xc1\xbc"):
            c.add(f"heparin 10 mL/h declaring {declared or 'nothing'} with an overlong {seq.encode('latin-1').hex()} in a note",
                  charset(message(cid(), [(heparin(10), [f"NTE|1||a{seq}RXG|1|||HEP^heparin^LOCAL|||||||||||4100|{ML_H[1]}"])]), declared) if declared
                  else message(cid(), [(heparin(10), [f"NTE|1||a{seq}RXG|1|||HEP^heparin^LOCAL|||||||||||4100|{ML_H[1]}"])]),
                  "block", "WG-HL7-P12", as_bytes=True)
    for seq in ("\xf8\x80\x80\x80\x8d", "\xfc\x80\x80\x80\x80\x8d"):
        c.add(f"heparin 10 mL/h declaring nothing with a long overlong {seq.encode('latin-1').hex()} in a note",
              message(cid(), [(heparin(10), [f"NTE|1||a{seq}RXG|1|||HEP^heparin^LOCAL|||||||||||4100|{ML_H[1]}"])]),
              "block", "WG-HL7-P12", as_bytes=True)
    # Single-byte letters with nothing declared that a check of lead bytes alone
    # took for overlong UTF-8 (a fourth review): letters, forwarded.
    for name in ("V\xfd\x9aka", "\xcc\xc8\xca\xce\xcb\xc0\xaf\xc2", "M\xfc\x93ller", "Per\xfa\xbb"):
        c.add(f"heparin 10 mL/h, undeclared single-byte name {name!r}",
              message(cid(), [(heparin(10), [])]).replace("Doe^Jane", f"{name}^Jane"), "allow", as_bytes=True)
    for declared, name in (("ISO 2022 IR 100", "Do\xe9"), ("KOI8-R", "Do\xe9")):
        c.add(f"heparin 10 mL/h declaring {declared} with the patient {name!r}",
              charset(message(cid(), [(heparin(10), [])]).replace("Doe^Jane", f"{name}^Jane"), declared), "allow", as_bytes=True)
    for declared, name in (("ISO IR192", "Do\xc3\xa9"), ("ISO_IR 192", "Do\xc3\xa9"), ("ISO IR100", "Do\xe9"), ("ISO IR6", "Doe")):
        c.add(f"heparin 10 mL/h declaring {declared} with the patient {name!r}",
              charset(message(cid(), [(heparin(10), [])]).replace("Doe^Jane", f"{name}^Jane"), declared), "allow", as_bytes=True)

    # --- Review 18: RXG-15 (the give *rate* amount) as an amount with RXG-14 ------
    # A receiver following the base standard runs the amount per RXG-14 as a
    # rate; one following PCD-03's bolus convention gives it as a dose. Both
    # readings are judged.
    for amount, per, unit, verdict, rule, why in (
        ("9000", "H1", U[1], "block", "WG-INF-010", "9000 U/h"),
        ("5000", "M30", U[1], "block", "WG-INF-010", "10000 U/h"),
        ("9000", "H1", U[0], "block", "WG-INF-010", "9000 U/h, MDC unit"),
        ("90", "H1", ML[1], "block", "WG-INF-010", "90 mL/h of 100 U/mL"),
        ("24000", "D1", U[1], "block", "WG-INF-011", "1000 U/h, but a 24000 U dose"),
        ("12000", "H24", U[1], "block", "WG-INF-011", "500 U/h, but a 12000 U dose"),
        ("1000", "H1", U[1], "allow", None, "1000 U/h or a 1000 U dose"),
        ("10", "H1", ML[1], "allow", None, "10 mL/h of 100 U/mL, or a 10 mL dose"),
        ("30", "H1", ML[1], "block", "WG-INF-010", "30 mL/h of 100 U/mL"),
    ):
        f = dict(f1="1", f4="HEP^heparin^LOCAL", f14=per, f15=amount, f16=unit)
        if unit in (ML[0], ML[1]):
            f.update(f17="25000", f18=U[1], f23="250", f24=ML[1])
        c.add(f"heparin RXG-15 {amount} {unit.split('^')[0]} with RXG-14 {per} ({why})",
              message(cid(), [(rxg(**f), [])]), verdict, rule)
    c.add("heparin RXG-15 100 U/kg with RXG-14 H1, 80 kg (8000 U/h)",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin^LOCAL", f14="H1", f15="100", f16="U/kg^U/kg^UCUM"), [weight("80")])]),
          "block", "WG-INF-010")
    c.add("heparin RXG-15 10 U/kg with RXG-14 H1, 80 kg (800 U/h, an 800 U dose)",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin^LOCAL", f14="H1", f15="10", f16="U/kg^U/kg^UCUM"), [weight("80")])]),
          "allow")
    c.add("vancomycin RXG-15 2500 mg with RXG-14 H1 (2500 mg/h)",
          message(cid(), [(rxg(f1="1", f4="VANC^vancomycin", f14="H1", f15="2500", f16=MG[0], f17="5", f18=MG[1], f23="1", f24=ML[1]), [])]),
          "block", "WG-INF-010")
    c.add("vancomycin RXG-15 1000 mg with RXG-14 H1 (1000 mg/h, a 1000 mg dose)",
          message(cid(), [(rxg(f1="1", f4="VANC^vancomycin", f14="H1", f15="1000", f16=MG[0], f17="5", f18=MG[1], f23="1", f24=ML[1]), [])]),
          "allow")
    c.add("heparin RXG-15 2000 U with RXG-14 H1 beside an OBX rate 10 mL/h (2000 U/h against 1000 U/h)",
          message(cid(), [(rxg(f1="1", f4="HEP^heparin^LOCAL", f14="H1", f15="2000", f16=U[1], f17="25000", f18=U[1], f23="250", f24=ML[1]),
                           ["OBX|1|NM|157784^MDC_FLOW_FLUID_PUMP^MDC||10|" + ML_H[0] + "|||||F"])]),
          "block", "WG-INF-017")
    # An order type saying continuous with only an amount: a rate per a default
    # time unit to one receiver, a dose to another.
    for amount in ("9000", "1000"):
        c.add(f"heparin order type continuous with only RXG-15 {amount} U (no rate, no duration)",
              message(cid(), [(rxg(f1="1", f4="HEP^heparin^LOCAL", f15=amount, f16=U[1]),
                               ["OBX|1|ST|158037^MDC_INFUS_ORDER_STEP_TYPE^MDC||continuous||||||F"])]),
              "block", "WG-INF-039")
    c.add("heparin order type continuous with 250 mL over 25 h (a rate from the duration)",
          message(cid(), [(heparin(10, vtbi="250"), ["OBX|1|ST|158037^MDC_INFUS_ORDER_STEP_TYPE^MDC||continuous||||||F", f"TQ1|1||||||||||||25^{HR_CQ}"])]),
          "allow")

    # --- Found by a seventh review (session 34) --------------------------------
    vanc2000 = rxg(f1="1", f4="VANC^vancomycin^LOCAL", f15="2000", f16=MG[1])
    # TQ1-2 does not repeat; a receiver reading the valued (or the last)
    # repetition gives the dose twice (4000 mg, over the hard limit).
    for q in ("~2", "~~2", "1~2", "~1~2", "2~"):
        c.add(f"vancomycin 2000 mg with TQ1-2 quantity {q!r}",
              message(cid(), [(vanc2000, [f"TQ1|1|{q}|||||||||||1^{HR_CQ}"])]), "block", "WG-INF-042")
    for q in ("~", "1~", "~1"):
        c.add(f"vancomycin 2000 mg with TQ1-2 quantity {q!r} (one at most)",
              message(cid(), [(vanc2000, [f"TQ1|1|{q}|||||||||||1^{HR_CQ}"])]), "allow")
    # A zero repetition of TQ1-13 is a zero duration to a receiver keeping it.
    for tq, orc in ((f"0^{MIN_CQ}~90^{MIN_CQ}", "RE"), (f"0^{MIN_CQ}~90^{MIN_CQ}", "CH"),
                    (f"0.0^{MIN_CQ}~90^{MIN_CQ}", "RE"), (f"0^{HR_CQ}~90^{MIN_CQ}", "RE")):
        c.add(f"vancomycin 1000 mg ({orc}) over TQ1-13 {tq.replace(MIN_CQ, 'min').replace(HR_CQ, 'h')} with a zero first repetition",
              message(cid(), [(rxg(f1="1", f4="VANC^vancomycin^LOCAL", f15="1000", f16=MG[1]), [f"TQ1|1||||||||||||{tq}"])], orc=orc),
              "block", "WG-INF-008")
    # A later zero (a sender writing hours and minutes: 1 h 0 min) changes
    # neither the sum nor the first repetition: read (a review's regression).
    for tq, what in ((f"1^{HR_CQ}~0^{MIN_CQ}", "1 h~0 min"), (f"90^{MIN_CQ}~0^{MIN_CQ}", "90 min~0 min")):
        c.add(f"vancomycin 1000 mg over TQ1-13 {what} (a later zero)",
              message(cid(), [(rxg(f1="1", f4="VANC^vancomycin^LOCAL", f15="1000", f16=MG[1]), [f"TQ1|1||||||||||||{tq}"])]),
              "allow")
    c.add("heparin 10 mL/h, VTBI 250 mL over TQ1-13 25 h~0 min (MDC units)",
          message(cid(), [(heparin(10, vtbi="250"), [f"TQ1|1||||||||||||25^{HR_CQ}~0^{MIN_CQ}"])]), "allow")
    # Two readings of one rate that disagree, both over the hard limit: refused
    # for both (the record heads with the hard limit, see the same-rule test).
    c.add("heparin RXG-15 25 mL/h (2500 U/h) beside an OBX pump rate 50 mL/h (5000 U/h)",
          message(cid(), [(heparin(25), [obx(1, "157784^MDC_FLOW_FLUID_PUMP^MDC", "50", ML_H[0])])]), "block", "WG-INF-010")
    c.add("heparin RXG-15 25 mL/h beside an OBX pump rate 50 mL/h: the disagreement named too",
          message(cid(), [(heparin(25), [obx(1, "157784^MDC_FLOW_FLUID_PUMP^MDC", "50", ML_H[0])])]), "block", "WG-INF-017")

    # Every refusal of the drug check also with '#' as the component separator, as
    # a sender may declare (MSH-2): the same decision whatever the delimiters.
    import re

    for item in list(c.items):
        if item["verdict"] == "block" and item["rule"] and item["rule"].startswith("WG-INF"):
            text = re.sub(r"\bC\d{4}\b", cid(), item["text"].replace("^", "#"))
            c.add(item["name"] + " (# as component separator)", text, "block", item["rule"], as_bytes=item["bytes"])
    return c.items
