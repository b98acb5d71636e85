//! An error's message with the causes its chain holds, each said once.

/// An error's message, then each cause in its `source()` chain that the text so far
/// does not already say, joined by `: ` — for errors of other crates that keep their
/// cause apart (a driver's "error connecting to server", an HTTP client's "error
/// sending request"), so that one line says what failed and why.
///
/// ```
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
/// #[derive(Debug)]
/// struct Connect(std::io::Error);
/// impl std::fmt::Display for Connect {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("error connecting to server")
///     }
/// }
/// impl std::error::Error for Connect {
///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
///         Some(&self.0)
///     }
/// }
/// assert_eq!(
///     sonde_model::message_with_causes(&Connect(io)),
///     "error connecting to server: connection refused"
/// );
/// ```
pub fn message_with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let said = e.to_string();
        if !said.is_empty() && !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = e.source();
    }
    text
}
