use std::io::Cursor;

use proptest::prelude::*;

use super::*;

const KEY: [u8; 32] = [7u8; 32];

fn id() -> uuid::Uuid {
    uuid::Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0)
}

/// Seals `chunks`, flushing after each, and finishes when `finish`.
fn seal(chunks: &[Vec<u8>], finish: bool) -> (Vec<u8>, Vec<u8>) {
    let mut w = SealedWriter::create(Vec::new(), &KEY, &id(), false).expect("create");
    let mut plain = Vec::new();
    for c in chunks {
        w.append(c).expect("append");
        w.flush().expect("flush");
        plain.extend_from_slice(c);
    }
    if finish {
        let (out, sealed) = w.finish().expect("finish");
        assert_eq!(sealed.len, plain.len() as u64);
        assert_eq!(sealed.sha256, <[u8; 32]>::from(Sha256::digest(&plain)));
        (out, plain)
    } else {
        (w.out, plain)
    }
}

fn read_all(file: &[u8]) -> Result<(Vec<u8>, bool), SealedError> {
    let mut r = SealedReader::open(Cursor::new(file), &KEY, Some(&id()))?;
    let complete = r.is_complete();
    Ok((r.read_all()?, complete))
}

fn chunks() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..8)
}

#[test]
fn a_finished_file_reads_back_whole_and_complete() {
    let (file, plain) = seal(&[b"hello ".to_vec(), b"world".to_vec()], true);
    assert_eq!(read_all(&file).expect("reads"), (plain, true));
    // Nothing of the plaintext is visible in the file.
    assert!(!file.windows(5).any(|w| w == b"hello" || w == b"world"));
}

#[test]
fn an_unfinished_file_reads_up_to_its_last_record_and_says_so() {
    let (file, plain) = seal(&[b"first".to_vec(), b"second".to_vec()], false);
    assert_eq!(read_all(&file).expect("reads"), (plain.clone(), false));
    // A crash in the middle of the next record: the partial record is left out.
    let mut cut = file.clone();
    cut.extend_from_slice(&[0, 0, 0, 40, 1, 2, 3]);
    assert_eq!(read_all(&cut).expect("reads"), (plain, false));
}

#[test]
fn appends_larger_than_a_record_are_split() {
    let big: Vec<u8> = (0..(MAX_RECORD * 2 + 5)).map(|i| (i % 251) as u8).collect();
    let (file, plain) = seal(std::slice::from_ref(&big), true);
    let mut r = SealedReader::open(Cursor::new(&file), &KEY, None).expect("opens");
    assert_eq!(r.records.len(), 4, "three data records and the final one");
    let mut got = Vec::new();
    let (a, b) = (MAX_RECORD as u64 - 3, MAX_RECORD as u64 * 2 + 2);
    r.read_range(a, b, |s| {
        got.extend_from_slice(s);
        Ok(())
    })
    .expect("range");
    assert_eq!(got, plain[a as usize..b as usize]);
}

#[test]
fn another_key_or_recording_cannot_open_it() {
    let (file, _) = seal(&[b"secret".to_vec()], true);
    let other = [8u8; 32];
    assert!(matches!(
        SealedReader::open(Cursor::new(&file), &other, None),
        Err(SealedError::Tampered(_))
    ));
    let wrong = uuid::Uuid::from_u128(1);
    assert!(matches!(
        SealedReader::open(Cursor::new(&file), &KEY, Some(&wrong)),
        Err(SealedError::WrongRecording)
    ));
}

#[test]
fn dropping_the_final_record_is_detected_as_truncation() {
    let (file, _) = seal(&[b"abc".to_vec(), b"def".to_vec()], true);
    // The final record is empty: 4 bytes of length + 16 of tag.
    let cut = &file[..file.len() - 20];
    let (_, complete) = read_all(cut).expect("still reads");
    assert!(!complete);
}

#[test]
fn bytes_after_the_final_record_are_refused() {
    let (mut file, _) = seal(&[b"abc".to_vec()], true);
    file.extend_from_slice(&[0, 0, 0]);
    assert!(matches!(read_all(&file), Err(SealedError::Corrupt(_))));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn range_reads_equal_slices_of_the_plaintext(
        chunks in chunks(),
        finish in any::<bool>(),
        a in any::<u16>(),
        b in any::<u16>(),
    ) {
        let (file, plain) = seal(&chunks, finish);
        let mut r = SealedReader::open(Cursor::new(&file), &KEY, Some(&id())).expect("opens");
        prop_assert_eq!(r.len(), plain.len() as u64);
        prop_assert_eq!(r.is_complete(), finish);
        let n = plain.len() as u64;
        let (mut s, mut e) = (u64::from(a) % (n + 1), u64::from(b) % (n + 1));
        if s > e {
            std::mem::swap(&mut s, &mut e);
        }
        let mut got = Vec::new();
        r.read_range(s, e, |x| { got.extend_from_slice(x); Ok(()) }).expect("range");
        prop_assert_eq!(&got[..], &plain[s as usize..e as usize]);
        prop_assert!(matches!(r.read_range(0, n + 1, |_| Ok(())), Err(SealedError::Range)));
    }

    #[test]
    fn any_changed_byte_of_a_finished_file_is_detected(
        chunks in chunks(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let (mut file, plain) = seal(&chunks, true);
        let i = at.index(file.len());
        file[i] ^= flip;
        match read_all(&file) {
            Err(_) => {}
            // Only a cut-short reading (not a complete one) may come back, and then
            // `is_complete` says so; never different bytes passed off as whole.
            Ok((got, complete)) => {
                prop_assert!(!complete, "a changed byte at {} went unnoticed", i);
                prop_assert!(plain.starts_with(&got));
            }
        }
    }

    #[test]
    fn truncated_files_never_panic_and_read_a_prefix(chunks in chunks(), at in any::<prop::sample::Index>()) {
        let (file, plain) = seal(&chunks, true);
        let cut = &file[..at.index(file.len() + 1)];
        if let Ok((got, complete)) = read_all(cut) {
            prop_assert!(plain.starts_with(&got));
            prop_assert_eq!(complete, cut.len() == file.len());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(mut bytes in prop::collection::vec(any::<u8>(), 0..600), magic in any::<bool>()) {
        if magic && bytes.len() >= HEADER_LEN {
            bytes[..8].copy_from_slice(MAGIC);
            bytes[8] = VERSION;
        }
        let _ = SealedReader::open(Cursor::new(&bytes), &KEY, None).map(|mut r| r.read_all());
    }
}
