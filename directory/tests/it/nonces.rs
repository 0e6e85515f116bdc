//! Challenge nonces claimed once across roleoutd instances, against a real
//! slapd and a real 389 Directory Server: the second claim of a nonce fails, and sweeping removes only
//! the nonces whose challenges expired.

use std::time::{Duration, SystemTime};

use roleout_directory::Directory;

use crate::{Server, on_both_servers};

async fn a_nonce_is_claimed_once_and_only_lapsed_ones_are_swept(local: &dyn Server) {
    {
        let directory = Directory::connect(&local.builder_settings()).await.unwrap();
        let now = SystemTime::now();
        let live = now + Duration::from_secs(60);
        let lapsed = now - Duration::from_secs(60);
        // The first claim makes ou=nonces; the second claimer is refused.
        assert!(directory.claim_nonce("nonce-live", live).await.unwrap());
        assert!(!directory.claim_nonce("nonce-live", live).await.unwrap());
        // A name with DN specials is escaped, not refused.
        assert!(directory.claim_nonce("a+b=c,d", live).await.unwrap());
        assert!(directory.claim_nonce("nonce-lapsed", lapsed).await.unwrap());

        assert_eq!(directory.forget_lapsed_nonces(now).await.unwrap(), 1);
        // The live ones are still claimed; the lapsed one is gone.
        assert!(!directory.claim_nonce("nonce-live", live).await.unwrap());
        assert!(!directory.claim_nonce("a+b=c,d", live).await.unwrap());
        assert!(directory.claim_nonce("nonce-lapsed", live).await.unwrap());
        // Nothing more to sweep.
        assert_eq!(directory.forget_lapsed_nonces(now).await.unwrap(), 0);
        directory.close().await;
    }
}

on_both_servers!(a_nonce_is_claimed_once_and_only_lapsed_ones_are_swept);
