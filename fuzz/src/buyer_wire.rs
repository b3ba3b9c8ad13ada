//! How the buyer client frames a buyer's answer off the wire (`gavel::delivery::wire::frame`): status line,
//! headers, `Content-Length`, `chunked`, 1xx, read to the end of the connection.

use gavel::delivery::wire::{frame, Answer, Reading};

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
    // Fed in pieces to one reading, which keeps what it made out, the bytes frame as they do whole.
    let step = usize::from(setup / 4 % 16) + 1;
    let mut reading = Reading::default();
    let mut fed = 0;
    let pieces = loop {
        fed = (fed + step).min(bytes.len());
        let last = fed == bytes.len();
        match reading.frame(&bytes[..fed], ended && last, limit) {
            Ok(None) if !last => continue,
            outcome => break outcome,
        }
    };
    match (&pieces, &whole) {
        // Whether the connection is kept depends on what came after the answer, which the pieces may not hold.
        (Ok(Some(a)), Ok(Some(b))) => assert_eq!((a.status, &a.body), (b.status, &b.body)),
        (Ok(None), Ok(None)) => {}
        (Err(_), Err(_)) => {}
        (Ok(None), Err(_)) | (Err(_), Ok(None)) if !ended => {}
        (pieces, whole) => panic!("in pieces of {step}: {pieces:?}; whole: {whole:?}"),
    }
    Outcome::of(matches!(whole, Ok(Some(_))))
}

fn check(answer: &Answer, bytes: &[u8], limit: usize) {
    assert!(answer.body.len() <= limit, "a body over the limit");
    assert!(answer.body.len() <= bytes.len(), "a body longer than what was sent");
    assert!((100..1000).contains(&answer.status), "status {} is not three digits", answer.status);
    assert!(!(100..200).contains(&answer.status) || answer.status == 101, "an interim answer was taken");
}
