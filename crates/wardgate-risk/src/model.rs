//! Types shared by the readers and the matcher: what an SBOM says a device
//! contains, and what a manufacturer's VEX statement says of a vulnerability.

use serde::{Deserialize, Serialize};

/// One software component a device contains, from its SBOM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// The component's name as the SBOM writes it.
    pub name: String,
    /// Its version as written, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Supplier, publisher or vendor as written, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supplier: Option<String>,
    /// Package URL (`pkg:type/namespace/name@version`), if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
    /// CPE 2.3 (or 2.2 URI) name, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpe: Option<String>,
}

/// What a VEX statement says of a product and a vulnerability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VexState {
    /// The product is not affected (a justification should say why).
    NotAffected,
    /// The product is affected.
    Affected,
    /// Fixed in this product (version).
    Fixed,
    /// The manufacturer does not know yet.
    UnderInvestigation,
}

/// How a VEX statement names a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ProductRef {
    /// A package URL.
    Purl {
        /// The purl as written.
        purl: String,
    },
    /// A CPE name.
    Cpe {
        /// The CPE as written.
        cpe: String,
    },
    /// A product by vendor, name and optional version (CSAF VEX product tree,
    /// or a CycloneDX component without purl/CPE).
    Name {
        /// Vendor as written, if known.
        vendor: Option<String>,
        /// Product name as written.
        name: String,
        /// Version or version range as written, if any.
        version: Option<String>,
    },
}

/// One manufacturer statement: this product, this vulnerability, this state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VexStatement {
    /// The vulnerability: a CVE id (`CVE-2017-12725`) or an advisory id
    /// (`ICSMA-17-250-02A`), as the statement names it.
    pub vulnerability: String,
    /// The product it speaks of.
    pub product: ProductRef,
    /// Its state.
    pub state: VexState,
    /// The justification as written (`component_not_present`,
    /// `vulnerable_code_not_in_execute_path`, ...), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    /// Free text: impact statement, detail or action, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Who made the statement (document author or publisher), if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// When (RFC 3339), if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// The document it came from (its id or file name), to show as evidence.
    pub source: String,
}
