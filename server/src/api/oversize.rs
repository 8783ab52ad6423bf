//! tonic refuses a request over the decoding limit with OUT_OF_RANGE; Kahuna's
//! contract is INVALID_ARGUMENT for every bound a client can break. This response
//! mapper relabels that one refusal (its message already names the limit) and adds
//! the `kahuna-error` entry the other limit errors carry.

use http::HeaderValue;

pub fn relabel(mut resp: http::Response<tonic::body::Body>) -> http::Response<tonic::body::Body> {
    let headers = resp.headers_mut();
    let too_large = headers.get("grpc-status").is_some_and(|v| v == "11")
        && headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .is_some_and(|m| m.contains("message%20length%20too%20large"));
    if too_large {
        headers.insert("grpc-status", HeaderValue::from_static("3"));
        headers.insert(crate::errors::ERROR_KEY, HeaderValue::from_static("INVALID_ARGUMENT"));
    }
    resp
}
