# relaysim main.cf corpus: openwisp/docker-openwisp, images/common/utils.sh lines 134-164 at
# commit cff53f40d0de4a00141d0e5481effb446e750214 (https://github.com/openwisp/docker-openwisp).
# Licence: BSD-3-Clause (LICENSE). The postconf -e commands a container runs at start, with
# their tab indentation removed (sed 's/^\t//'); the shell fills in $POSTFIX_* at run time.
# expect: valid
# ---- the lines follow ----
postconf -e smtputf8_enable=no

# Configure posfix
postconf -e biff=no
postconf -e append_dot_mydomain=no
postconf -e readme_directory=no

postconf -e smtpd_use_tls=yes
postconf -e smtpd_tls_cert_file=/etc/ssl/mail/openwisp.mail.crt
postconf -e smtpd_tls_key_file=/etc/ssl/mail/openwisp.mail.key
postconf -e smtpd_tls_session_cache_database=btree:/var/lib/postfix/smtpd_scache
postconf -e smtp_tls_session_cache_database=btree:/var/lib/postfix/smtp_scache

postconf -e myhostname="$POSTFIX_MYHOSTNAME"
postconf -e myorigin='$myhostname'
postconf -e alias_maps=lmdb:/etc/aliases
postconf -e smtp_generic_maps=lmdb:/etc/postfix/generic
postconf -e alias_database=lmdb:/etc/aliases
postconf -e mydestination="$POSTFIX_DESTINATION"

postconf -e mynetworks="$POSTFIX_MYNETWORKS"
postconf -e message_size_limit="$POSTFIX_MESSAGE_SIZE_LIMIT"
postconf -e mailbox_size_limit=0
postconf -e recipient_delimiter=+
postconf -e inet_protocols=all

postconf -e bounce_queue_lifetime=1h
postconf -e maximal_queue_lifetime=1h
postconf -e maximal_backoff_time=15m
postconf -e minimal_backoff_time=5m
postconf -e queue_run_delay=5m
