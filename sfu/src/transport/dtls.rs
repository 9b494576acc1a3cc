//! The DTLS server of one peer (being written).
