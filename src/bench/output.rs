//! STUB: to be written by the bench work.
