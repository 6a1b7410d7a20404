//! The pieces a connection is made of: the body decoders, the socket
//! handles, the turn-taking of requests on one connection, and the pool of
//! connection threads.

pub(crate) use self::chunked::ChunkedDecoder;
pub(crate) use self::equal_reader::EqualReader;
pub(crate) use self::refined_tcp_stream::RefinedTcpStream;
pub(crate) use self::sequential::SequentialWriterBuilder;
pub(crate) use self::sequential::{SequentialReader, SequentialReaderBuilder};
pub(crate) use self::task_pool::TaskPool;

mod chunked;
mod equal_reader;
mod refined_tcp_stream;
mod sequential;
mod task_pool;
