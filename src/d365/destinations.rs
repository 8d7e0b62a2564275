//! Where credentials may go: the client secret only to allowed authority
//! hosts, and anything (secret, bearer tokens) over plain HTTP only to
//! hosts allowed to be insecure. Whoever may create a D365Connection picks
//! its URLs, so without this policy they pick where the secret is sent.

use std::fmt;
use std::str::FromStr;

use url::{Host, Url};

use super::D365Error;

/// Entra's login hosts: the global cloud, Azure Government, and Azure
/// operated by 21Vianet under both of its names (the national-cloud page
/// of the Microsoft identity platform docs, and MSAL's
/// `AzureCloudInstance`). Azure Germany closed in 2021.
pub const DEFAULT_AUTHORITY_HOSTS: &str = "login.microsoftonline.com,login.microsoftonline.us,\
login.partner.microsoftonline.cn,login.chinacloudapi.cn";

/// Loopback: the demo and the tests run the emulator there.
pub const DEFAULT_INSECURE_HOSTS: &str = "127.0.0.1,::1,localhost";

/// An entry of a host list that is not a host (or `host:port`).
#[derive(Debug, thiserror::Error)]
pub enum HostListError {
    #[error("{entry:?} is a URL; list its host only (e.g. login.microsoftonline.com)")]
    Url { entry: String },
    #[error("{entry:?} is not a host name or IP address")]
    Host {
        entry: String,
        #[source]
        source: url::ParseError,
    },
    #[error("{entry:?} has no valid port after the host")]
    Port {
        entry: String,
        #[source]
        source: std::num::ParseIntError,
    },
}

/// One allowed host, matched exactly (no suffixes, no wildcards) and, as
/// URL hosts are, case-insensitively; with a port it allows only that port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: Host<String>,
    port: Option<u16>,
}

impl HostPattern {
    fn matches(&self, url: &Url) -> bool {
        url.host().is_some_and(|h| h.to_owned() == self.host)
            && self
                .port
                .is_none_or(|p| url.port_or_known_default() == Some(p))
    }
}

impl FromStr for HostPattern {
    type Err = HostListError;

    /// `name`, `name:port`, `1.2.3.4[:port]`, `::1`, `[::1][:port]`.
    fn from_str(entry: &str) -> Result<Self, Self::Err> {
        let entry = entry.trim();
        if entry.contains("://") {
            return Err(HostListError::Url {
                entry: entry.to_owned(),
            });
        }
        let (host, port) = match entry.strip_prefix('[').and_then(|r| r.split_once(']')) {
            // Anything but `:port` after the bracket fails as a port.
            Some((v6, "")) => (format!("[{v6}]"), None),
            Some((v6, rest)) => (
                format!("[{v6}]"),
                Some(rest.strip_prefix(':').unwrap_or(rest)),
            ),
            None if entry.matches(':').count() > 1 => (format!("[{entry}]"), None),
            None => match entry.split_once(':') {
                Some((host, port)) => (host.to_owned(), Some(port)),
                None => (entry.to_owned(), None),
            },
        };
        let port = port
            .map(|p| p.parse::<u16>())
            .transpose()
            .map_err(|source| HostListError::Port {
                entry: entry.to_owned(),
                source,
            })?;
        let host = Host::parse(&host).map_err(|source| HostListError::Host {
            entry: entry.to_owned(),
            source,
        })?;
        Ok(Self { host, port })
    }
}

impl HostPattern {
    /// A comma-separated list; empty entries are skipped.
    pub fn list(hosts: &str) -> Result<Vec<Self>, HostListError> {
        hosts
            .split(',')
            .filter(|e| !e.trim().is_empty())
            .map(Self::from_str)
            .collect()
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => write!(f, "{}", self.host),
        }
    }
}

/// The policy: checked whenever a client is built, so before any request
/// carrying the secret or a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destinations {
    authority_hosts: Vec<HostPattern>,
    insecure_hosts: Vec<HostPattern>,
}

impl Default for Destinations {
    /// Entra's hosts; plain HTTP only on loopback.
    fn default() -> Self {
        Self::parse(DEFAULT_AUTHORITY_HOSTS, DEFAULT_INSECURE_HOSTS).expect("valid defaults")
    }
}

impl Destinations {
    /// An empty list allows nothing.
    pub fn new(authority_hosts: Vec<HostPattern>, insecure_hosts: Vec<HostPattern>) -> Self {
        Self {
            authority_hosts,
            insecure_hosts,
        }
    }

    /// From comma-separated lists (see [`HostPattern::list`]).
    pub fn parse(authority_hosts: &str, insecure_hosts: &str) -> Result<Self, HostListError> {
        Ok(Self::new(
            HostPattern::list(authority_hosts)?,
            HostPattern::list(insecure_hosts)?,
        ))
    }

    /// Refuses an authority off the list, and plain HTTP to a host not
    /// allowed to be insecure; the message names the host and the flag.
    pub fn check(&self, environment: &Url, authority: &Url) -> Result<(), D365Error> {
        if !self.authority_hosts.iter().any(|h| h.matches(authority)) {
            return Err(D365Error::config(format!(
                "authority URL host {} is not an allowed authority host, so the client \
                 secret is not sent there (allowed: {}); if it is a real Entra authority, \
                 add it to the operator's --allowed-authority-hosts \
                 (ALLOWED_AUTHORITY_HOSTS, chart value allowedAuthorityHosts)",
                shown(authority),
                listed(&self.authority_hosts),
            )));
        }
        for (name, url) in [
            ("environment URL", environment),
            ("authority URL", authority),
        ] {
            if url.scheme() == "http" && !self.insecure_hosts.iter().any(|h| h.matches(url)) {
                return Err(D365Error::config(format!(
                    "{name} uses plain http to host {}, which would send credentials \
                     unencrypted; use https, or add the host to the operator's \
                     --allow-insecure-hosts (ALLOW_INSECURE_HOSTS, chart value \
                     allowInsecureHosts)",
                    shown(url),
                )));
            }
        }
        Ok(())
    }
}

/// Refuses a token scope whose audience is not the environment itself.
/// The operator sends the token it gets for `scope` as a bearer to
/// `environment`, so a scope naming another host would hand whoever runs
/// `environment` a valid token for that other resource (e.g. another D365
/// environment). Accepted: exactly one `<resource>/.default` (the only kind
/// a client-credentials request may ask for [doc]) whose resource is an
/// http(s) URL without user info, query or fragment, on the environment's
/// host and port (any case, a trailing dot and the default port ignored).
pub fn check_scope(environment: &Url, scope: &str) -> Result<(), D365Error> {
    let refuse = |why: &str| {
        D365Error::config(format!(
            "spec.auth.scope {:?} is refused: {why}; the token is sent to spec.url's host {}, \
             so its audience must be that host (leave scope unset for the default \
             <url>/.default)",
            quoted(scope),
            shown(environment),
        ))
    };
    let scope = scope.trim();
    if scope.chars().any(char::is_whitespace) {
        return Err(refuse("it names more than one scope"));
    }
    let Some(resource) = scope.strip_suffix("/.default") else {
        return Err(refuse("it must end in /.default"));
    };
    let resource = Url::parse(resource).map_err(|e| refuse(&format!("not a URL ({e})")))?;
    if !matches!(resource.scheme(), "https" | "http")
        || !resource.username().is_empty()
        || resource.password().is_some()
        || resource.query().is_some()
        || resource.fragment().is_some()
    {
        return Err(refuse(
            "its resource must be an http(s) URL without user info, query or fragment",
        ));
    }
    if same_host(&resource, environment) {
        Ok(())
    } else {
        Err(refuse(&format!(
            "its host {} is not spec.url's",
            shown(&resource)
        )))
    }
}

/// Host (a trailing dot ignored; domains are already lower-case) and port
/// (the scheme's default filled in) are equal.
fn same_host(a: &Url, b: &Url) -> bool {
    let host = |u: &Url| match u.host() {
        Some(Host::Domain(d)) => Some(Host::Domain(d.trim_end_matches('.').to_owned())),
        other => other.map(|h| h.to_owned()),
    };
    host(a).is_some()
        && host(a) == host(b)
        && a.port_or_known_default() == b.port_or_known_default()
}

/// At most 200 characters of a user-given value, for messages.
fn quoted(value: &str) -> String {
    value.chars().take(200).collect()
}

/// `host:port` of a URL (never its user info or path).
fn shown(url: &Url) -> String {
    let host = url.host().map(|h| h.to_string()).unwrap_or_default();
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

fn listed(hosts: &[HostPattern]) -> String {
    if hosts.is_empty() {
        return "none".to_owned();
    }
    hosts
        .iter()
        .map(|h| h.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
#[path = "destinations_tests.rs"]
mod tests;
