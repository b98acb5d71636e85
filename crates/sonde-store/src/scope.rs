//! Which tenant an operation may see.

/// Which tenant an operation may see.
///
/// ```
/// use sonde_store::Scope;
/// assert!(Scope::All.allows(Some("acme"), None));
/// let acme = Scope::tenant("acme", "prod");
/// assert!(acme.allows(Some("acme"), Some("prod")));
/// assert!(!acme.allows(Some("globex"), Some("prod")));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Scope {
    /// Every tenant (the local CLI, an admin key).
    #[default]
    All,
    /// One org / workspace.
    Tenant {
        /// The organisation.
        org: String,
        /// The workspace.
        workspace: String,
    },
}

impl Scope {
    /// The scope of one tenant.
    ///
    /// ```
    /// assert_ne!(sonde_store::Scope::tenant("a", "b"), sonde_store::Scope::All);
    /// ```
    pub fn tenant(org: impl Into<String>, workspace: impl Into<String>) -> Self {
        Scope::Tenant {
            org: org.into(),
            workspace: workspace.into(),
        }
    }

    /// Whether data of `org` / `workspace` is visible in this scope.
    ///
    /// ```
    /// assert!(!sonde_store::Scope::tenant("a", "b").allows(None, None));
    /// ```
    pub fn allows(&self, org: Option<&str>, workspace: Option<&str>) -> bool {
        match self {
            Scope::All => true,
            Scope::Tenant {
                org: o,
                workspace: w,
            } => org == Some(o.as_str()) && workspace == Some(w.as_str()),
        }
    }
}
