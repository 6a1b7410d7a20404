//! Sync → Kinto: record bodies in one pass over the bytes ([`body`]) and the headers of
//! an answer ([`headers`]).

pub(crate) mod body;
pub(crate) mod headers;

pub(crate) use body::{rewrite_list, rewrite_record};
pub(crate) use headers::translate_headers;

#[cfg(test)]
mod oracle;

#[cfg(test)]
mod tests;
