//! Request bodies: the JSON a client sends.

use super::error::Error;
use crate::message::Request;

/// The body as JSON: 415/107 unless the Content-Type (when given) is
/// JSON, 400/106 when it does not parse.
pub(crate) fn json_body(req: &Request<'_>) -> Result<serde_json::Value, Error> {
    json_content_type(req)?;
    serde_json::from_slice(req.body).map_err(|e| Error::InvalidJson(e.to_string()))
}

/// 415/107 unless the Content-Type (when given) is JSON.
pub(crate) fn json_content_type(req: &Request<'_>) -> Result<(), Error> {
    if let Some(ct) = req.header("content-type") {
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if mime != "application/json" && !mime.ends_with("+json") {
            return Err(Error::UnsupportedMediaType);
        }
    }
    Ok(())
}
