//! The codec's primitives: known encodings and every refusal.

use crate::events::codec::{
    AvroEnum, AvroField, CodecError, Decoder, Encoder, MAX_ARRAY_ITEMS, MAX_BYTES_LEN, MAX_DEPTH,
    date_to_days, days_to_date,
};
use crate::events::model::{Category, Status};

fn long_bytes(v: i64) -> Vec<u8> {
    let mut out = Encoder::new();
    out.long(v);
    out.into_bytes()
}

#[test]
fn zigzag_varints_match_the_spec() {
    assert_eq!(long_bytes(0), [0x00]);
    assert_eq!(long_bytes(-1), [0x01]);
    assert_eq!(long_bytes(1), [0x02]);
    assert_eq!(long_bytes(-64), [0x7f]);
    assert_eq!(long_bytes(64), [0x80, 0x01]);
    assert_eq!(long_bytes(i64::MAX).len(), 10);
    assert_eq!(long_bytes(i64::MIN).len(), 10);
    for v in [
        0,
        1,
        -1,
        63,
        -64,
        64,
        i64::from(i32::MAX),
        i64::MIN,
        i64::MAX,
    ] {
        let bytes = long_bytes(v);
        let mut input = Decoder::new(&bytes);
        assert_eq!(input.long(), Ok(v));
        assert_eq!(input.finish(), Ok(()));
    }
}

#[test]
fn varints_longer_than_ten_bytes_are_refused() {
    let eleven = [0x80u8; 10]
        .iter()
        .copied()
        .chain([0x00])
        .collect::<Vec<_>>();
    assert_eq!(
        Decoder::new(&eleven).long(),
        Err(CodecError::VarintTooLong { offset: 0 })
    );
    // Ten bytes whose last one carries more than the 64th bit.
    let overflow = [0xffu8; 9]
        .iter()
        .copied()
        .chain([0x02])
        .collect::<Vec<_>>();
    assert_eq!(
        Decoder::new(&overflow).long(),
        Err(CodecError::VarintTooLong { offset: 0 })
    );
    assert!(matches!(
        Decoder::new(&[0x80]).long(),
        Err(CodecError::Truncated { .. })
    ));
}

#[test]
fn ints_out_of_range_are_refused() {
    let bytes = long_bytes(i64::from(i32::MAX) + 1);
    assert!(matches!(
        Decoder::new(&bytes).int(),
        Err(CodecError::IntOutOfRange { .. })
    ));
}

#[test]
fn booleans_are_zero_or_one() {
    assert_eq!(Decoder::new(&[1]).boolean(), Ok(true));
    assert_eq!(
        Decoder::new(&[2]).boolean(),
        Err(CodecError::InvalidBool { offset: 0, byte: 2 })
    );
}

#[test]
fn strings_and_bytes_are_bounded_and_checked() {
    let mut out = Encoder::new();
    out.string("é€😀");
    let bytes = out.into_bytes();
    assert_eq!(bytes[0], 2 * 9);
    assert_eq!(Decoder::new(&bytes).string(), Ok("é€😀"));

    let negative = long_bytes(-1);
    assert!(matches!(
        Decoder::new(&negative).bytes(),
        Err(CodecError::NegativeLength { length: -1, .. })
    ));
    let too_long = long_bytes(MAX_BYTES_LEN as i64 + 1);
    assert!(matches!(
        Decoder::new(&too_long).bytes(),
        Err(CodecError::TooLong { .. })
    ));
    let truncated = [long_bytes(5), b"abc".to_vec()].concat();
    assert!(matches!(
        Decoder::new(&truncated).bytes(),
        Err(CodecError::Truncated {
            needed: 5,
            remaining: 3,
            ..
        })
    ));
    let invalid = [long_bytes(2), vec![0xc3, 0x28]].concat();
    assert_eq!(
        Decoder::new(&invalid).string(),
        Err(CodecError::InvalidUtf8 { offset: 0 })
    );
}

#[test]
fn arrays_are_one_block_and_any_block_form_decodes() {
    let mut out = Encoder::new();
    vec![1i32, 2, 3].encode_field(&mut out);
    assert_eq!(out.as_bytes(), [0x06, 0x02, 0x04, 0x06, 0x00]);
    let mut out = Encoder::new();
    Vec::<i32>::new().encode_field(&mut out);
    assert_eq!(out.as_bytes(), [0x00]);

    // Two blocks, the second with a negative count and its byte size.
    let blocks = [0x02, 0x02, 0x03, 0x04, 0x04, 0x06, 0x00];
    let mut input = Decoder::new(&blocks);
    assert_eq!(Vec::<i32>::decode_field(&mut input), Ok(vec![1, 2, 3]));
    assert_eq!(input.finish(), Ok(()));

    let too_many = long_bytes(MAX_ARRAY_ITEMS as i64 + 1);
    assert!(matches!(
        Vec::<i32>::decode_field(&mut Decoder::new(&too_many)),
        Err(CodecError::TooManyItems { .. })
    ));
    // A huge count over a short input: an error, and no huge allocation.
    let short = [long_bytes(MAX_ARRAY_ITEMS as i64), vec![0x02]].concat();
    assert!(matches!(
        Vec::<i32>::decode_field(&mut Decoder::new(&short)),
        Err(CodecError::Truncated { .. })
    ));
    let min = [long_bytes(i64::MIN)].concat();
    assert!(Vec::<i32>::decode_field(&mut Decoder::new(&min)).is_err());
}

#[test]
fn enums_and_unions_are_range_checked() {
    assert_eq!(
        Category::decode_field(&mut Decoder::new(&long_bytes(10))),
        Ok(Category::Hospital)
    );
    assert_eq!(
        Category::decode_field(&mut Decoder::new(&long_bytes(11))),
        Err(CodecError::EnumIndex {
            name: "Category",
            offset: 0,
            index: 11
        })
    );
    assert!(matches!(
        Status::decode_field(&mut Decoder::new(&long_bytes(-1))),
        Err(CodecError::EnumIndex { index: -1, .. })
    ));
    assert!(matches!(
        Option::<i32>::decode_field(&mut Decoder::new(&long_bytes(2))),
        Err(CodecError::UnionIndex { index: 2, .. })
    ));
    assert_eq!(
        Option::<i32>::decode_field(&mut Decoder::new(&[0x00])),
        Ok(None)
    );
    assert_eq!(
        Option::<i32>::decode_field(&mut Decoder::new(&[0x02, 0x54])),
        Ok(Some(42))
    );
}

#[test]
fn enum_lists_follow_declaration_order() {
    fn check<E: AvroEnum + PartialEq + std::fmt::Debug>() {
        for (i, variant) in E::VARIANTS.iter().enumerate() {
            assert_eq!(variant.index() as usize, i, "{}", E::NAME);
            assert_eq!(variant.symbol(), E::SYMBOLS[i], "{}", E::NAME);
        }
        assert_eq!(E::VARIANTS.len(), E::SYMBOLS.len());
    }
    use crate::events::model::*;
    check::<Category>();
    check::<SectorSymbol>();
    check::<Pathway>();
    check::<Complement>();
    check::<Stage>();
    check::<SignatureCheck>();
    check::<LocalRegimeSymbol>();
    check::<Route>();
    check::<Status>();
    check::<PayeeKind>();
    check::<ReturnKind>();
    assert_eq!(&Category::ALL[..], Category::VARIANTS);
}

#[test]
fn dates_are_days_from_the_epoch() {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("date");
    assert_eq!(date_to_days(epoch), 0);
    let d = chrono::NaiveDate::from_ymd_opt(1900, 1, 1).expect("date");
    assert_eq!(date_to_days(d), -25_567);
    assert_eq!(days_to_date(-25_567), Ok(d));
    assert_eq!(
        days_to_date(i32::MAX),
        Err(CodecError::DateOutOfRange { days: i32::MAX })
    );
    assert!(days_to_date(i32::MIN).is_err());
    for date in [chrono::NaiveDate::MIN, chrono::NaiveDate::MAX] {
        assert_eq!(days_to_date(date_to_days(date)), Ok(date));
    }
}

#[test]
fn fixed_is_the_bytes_alone() {
    let hash = [7u8; 32];
    let mut out = Encoder::new();
    hash.encode_field(&mut out);
    assert_eq!(out.as_bytes(), &hash[..]);
    assert!(matches!(
        <[u8; 32]>::decode_field(&mut Decoder::new(&[7u8; 31])),
        Err(CodecError::Truncated { needed: 32, .. })
    ));
}

#[test]
fn nesting_is_bounded() {
    let mut input = Decoder::new(&[]);
    for _ in 0..MAX_DEPTH {
        assert_eq!(input.enter(), Ok(()));
    }
    assert_eq!(input.enter(), Err(CodecError::TooDeep));
    input.leave();
    assert_eq!(input.enter(), Ok(()));
}

#[test]
fn trailing_bytes_are_refused() {
    let bytes = [0x02, 0x00];
    let mut input = Decoder::new(&bytes);
    assert_eq!(input.long(), Ok(1));
    assert_eq!(input.finish(), Err(CodecError::TrailingBytes { count: 1 }));
}
