//! How the `cairn` command states an error: on one line, each cause once.

/// `e` and its causes joined by `: `, skipping a cause whose text is
/// already in the line. The library's errors name their cause in their own
/// text (`network: <why>`) and also return it as their source, so printing
/// the whole chain would say every reason twice.
pub fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;
    use cairn_protocol::params::ParamsError;

    #[test]
    fn every_cause_is_said_once() {
        let params = ParamsError::NetworkTooSmall { nodes: 2, min: 3 };
        let sentence = params.to_string();
        let e = anyhow::Error::from(cairn_client::Error::from(params)).context("put a.txt");
        let line = error_line(&e);
        assert_eq!(line, format!("put a.txt: {sentence}"));
        assert_eq!(line.matches(&sentence).count(), 1);

        // A wrapper that repeats its source's text, as `#[error("network: {0}")]` does.
        let io = std::io::Error::other("connection refused");
        let e = Err::<(), _>(io)
            .context("reading node.json")
            .context("devnet status")
            .unwrap_err();
        assert_eq!(
            error_line(&e),
            "devnet status: reading node.json: connection refused"
        );
    }
}
