//! How the buyer client frames a buyer's answer off the wire (`gavel::delivery::wire::frame`): status line,
//! headers, `Content-Length`, `chunked`, 1xx, read to the end of the connection.

use gavel::delivery::wire::{frame, Answer};

use crate::Outcome;

/// The body limits tried: tiny, and the client's own.
const LIMITS: [usize; 2] = [16, gavel::delivery::MAX_ANSWER_BYTES];

/// The first byte chooses the limit and where the bytes are cut; the rest is what the buyer sent, whole.
/// Accepted when the whole of it frames to an answer.
pub fn run(data: &[u8]) -> Outcome {
    let [setup, ref bytes @ ..] = *data else { return Outcome::Skipped };
    let limit = LIMITS[usize::from(setup % 2)];
    let ended = setup & 2 != 0;
    let whole = frame(bytes, ended, limit);
    if let Ok(Some(answer)) = &whole {
        check(answer, bytes, limit);
    }
    // However the bytes arrive, a prefix is never a different answer: it is "more to come", the same
    // answer (the rest was not part of it), or the same error (known from what the prefix holds).
    let cut = usize::from(setup / 4) * bytes.len() / 64;
    match (frame(&bytes[..cut], false, limit), &whole) {
        (Ok(None), _) => {}
        (Ok(Some(early)), Ok(Some(answer))) => {
            assert_eq!((early.status, &early.body), (answer.status, &answer.body), "a prefix framed differently");
        }
        (Err(early), Err(error)) => assert_eq!(&early, error, "a prefix failed differently"),
        (early, whole) => panic!("the first {cut} bytes gave {early:?}, all {} gave {whole:?}", bytes.len()),
    }
    Outcome::of(matches!(whole, Ok(Some(_))))
}

fn check(answer: &Answer, bytes: &[u8], limit: usize) {
    assert!(answer.body.len() <= limit, "a body over the limit");
    assert!(answer.body.len() <= bytes.len(), "a body longer than what was sent");
    assert!((100..1000).contains(&answer.status), "status {} is not three digits", answer.status);
    assert!(!(100..200).contains(&answer.status) || answer.status == 101, "an interim answer was taken");
}
