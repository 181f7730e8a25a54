/* SPDX-License-Identifier: MIT */
/* Ed25519 keys and manifest signatures (OpenSSL 3 EVP, pure Ed25519: the
 * whole manifest is signed, no pre-hash). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secret_file.h"
#include "snapshot_internal.h"

#define KEY_FILE_MAX (64 * 1024)

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MD_CTX *, EVP_MD_CTX_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free)

int snapshot_read_file_at(int dirfd, const char *name, size_t max, char **ret_data,
			  size_t *ret_size)
{
	_cleanup_close_ int fd =
	    openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	_cleanup_free_ char *data = NULL;
	struct stat st;
	size_t n = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EBADFD;
	if ((uint64_t)st.st_size > max)
		return -EFBIG;
	data = malloc((size_t)st.st_size + 1);
	if (!data)
		return -ENOMEM;
	/* Read one byte more than the size to notice a file that grew. */
	for (;;) {
		ssize_t k = read(fd, data + n, (size_t)st.st_size + 1 - n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			break;
		n += (size_t)k;
		if (n > (size_t)st.st_size)
			return -EFBIG;
	}
	data[n] = '\0';
	*ret_data = TAKE_PTR(data);
	*ret_size = n;
	return 0;
}

static const char *openssl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *reason = e ? ERR_reason_error_string(e) : NULL;

	return reason ? reason : "not a PEM key";
}

static int load_key(const char *path, bool private, EVP_PKEY **ret_key,
		    struct snapshot_error *ret_error)
{
	_cleanup_free_ char *data = NULL;
	_cleanup_(BIO_freep) BIO *bio = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	size_t size;
	int r;

	r = snapshot_read_file_at(AT_FDCWD, path, KEY_FILE_MAX, &data, &size);
	if (r < 0) {
		snapshot_error_set(ret_error, path, "cannot read key: %s", strerror(-r));
		return r;
	}
	if (private) {
		struct stat st;

		/* Like ssh: a private key others can read or own is not used. */
		if (stat(path, &st) == 0 && secret_file_refusal(&st)) {
			char facts[64];

			secret_file_describe(&st, facts, sizeof(facts));
			snapshot_error_set(ret_error, path, "private key: %s (%s)",
					   secret_file_refusal(&st), facts);
			return -EPERM;
		}
	}
	bio = BIO_new_mem_buf(data, (int)size);
	if (!bio)
		return -ENOMEM;
	ERR_clear_error();
	key = private ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)
		      : PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	explicit_bzero(data, size);
	if (!key) {
		snapshot_error_set(ret_error, path, "not a PEM %s key: %s",
				   private ? "private" : "public", openssl_reason());
		ERR_clear_error();
		return -EINVAL;
	}
	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_ED25519) {
		snapshot_error_set(ret_error, path, "not an Ed25519 key");
		return -EINVAL;
	}
	*ret_key = TAKE_PTR(key);
	return 0;
}

int snapshot_load_private_key(const char *path, EVP_PKEY **ret_key,
			      struct snapshot_error *ret_error)
{
	return load_key(path, true, ret_key, ret_error);
}

int snapshot_load_public_key(const char *path, EVP_PKEY **ret_key, struct snapshot_error *ret_error)
{
	return load_key(path, false, ret_key, ret_error);
}

int snapshot_sign(EVP_PKEY *key, const void *data, size_t size, uint8_t ret_sig[SNAPSHOT_SIG_SIZE])
{
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t sig[SNAPSHOT_SIG_SIZE];
	size_t sig_size = sizeof(sig);

	if (!ctx)
		return -ENOMEM;
	if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) != 1 ||
	    EVP_DigestSign(ctx, sig, &sig_size, data, size) != 1 || sig_size != sizeof(sig)) {
		ERR_clear_error();
		return -EIO;
	}
	memcpy(ret_sig, sig, sizeof(sig));
	return 0;
}

int snapshot_signature_check(EVP_PKEY *key, const void *data, size_t size,
			     const uint8_t sig[SNAPSHOT_SIG_SIZE])
{
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	if (!ctx)
		return -ENOMEM;
	if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) != 1) {
		ERR_clear_error();
		return -EIO;
	}
	ok = EVP_DigestVerify(ctx, sig, SNAPSHOT_SIG_SIZE, data, size);
	ERR_clear_error();
	return ok == 1 ? 0 : -EBADMSG;
}

/* All of data into fd with exactly mode, then to disk: 0 or -errno. */
static int fill_file(int fd, mode_t mode, const char *data, size_t size)
{
	size_t done = 0;

	/* The umask must not widen nor narrow what we mean. */
	if (fchmod(fd, mode) < 0)
		return -errno;
	while (done < size) {
		ssize_t k = write(fd, data + done, size - done);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)k;
	}
	if (fsync(fd) < 0)
		return -errno;
	return 0;
}

/* Write a PEM into a new file (O_EXCL); a file that could not be written
 * whole is removed. */
static int write_new_file(const char *path, mode_t mode, const char *data, size_t size)
{
	_cleanup_close_ int fd =
	    open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	int r;

	if (fd < 0)
		return -errno;
	r = fill_file(fd, mode, data, size);
	if (r < 0)
		unlink(path);
	return r;
}

static int pem_of(EVP_PKEY *key, bool private, char **ret_text, size_t *ret_size)
{
	_cleanup_(BIO_freep) BIO *bio = BIO_new(BIO_s_mem());
	char *p;
	long n;

	if (!bio)
		return -ENOMEM;
	if ((private ? PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)
		     : PEM_write_bio_PUBKEY(bio, key)) != 1) {
		ERR_clear_error();
		return -EIO;
	}
	n = BIO_get_mem_data(bio, &p);
	if (n <= 0)
		return -EIO;
	*ret_text = malloc((size_t)n);
	if (!*ret_text)
		return -ENOMEM;
	memcpy(*ret_text, p, (size_t)n);
	*ret_size = (size_t)n;
	if (private)
		OPENSSL_cleanse(p, (size_t)n);
	return 0;
}

/* The private key's PEM text: wiped before it is freed. */
struct secret_pem {
	char *text;
	size_t size;
};

static void secret_pem_erase(struct secret_pem *pem)
{
	if (pem->text)
		OPENSSL_cleanse(pem->text, pem->size);
	free(pem->text);
}

int snapshot_keygen(const char *prefix, struct snapshot_error *ret_error)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	_cleanup_(secret_pem_erase) struct secret_pem priv = {0};
	_cleanup_free_ char *pub = NULL;
	char key_path[PATH_MAX], pub_path[PATH_MAX];
	size_t pub_size = 0;
	struct stat st;
	int r;

	if ((size_t)snprintf(key_path, sizeof(key_path), "%s.key", prefix) >= sizeof(key_path) ||
	    (size_t)snprintf(pub_path, sizeof(pub_path), "%s.pub", prefix) >= sizeof(pub_path)) {
		snapshot_error_set(ret_error, prefix, "path too long");
		return -ENAMETOOLONG;
	}
	if (lstat(key_path, &st) == 0 || lstat(pub_path, &st) == 0) {
		snapshot_error_set(ret_error, lstat(key_path, &st) == 0 ? key_path : pub_path,
				   "exists; refusing to overwrite a key");
		return -EEXIST;
	}
	key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!key) {
		ERR_clear_error();
		snapshot_error_set(ret_error, prefix, "Ed25519 key generation failed");
		return -EIO;
	}
	r = pem_of(key, true, &priv.text, &priv.size);
	if (r == 0)
		r = pem_of(key, false, &pub, &pub_size);
	if (r < 0) {
		snapshot_error_set(ret_error, prefix, "cannot encode the key: %s", strerror(-r));
		return r;
	}
	r = write_new_file(key_path, 0600, priv.text, priv.size);
	if (r < 0) {
		snapshot_error_set(ret_error, key_path, "cannot write: %s", strerror(-r));
		return r;
	}
	r = write_new_file(pub_path, 0644, pub, pub_size);
	if (r < 0) {
		snapshot_error_set(ret_error, pub_path, "cannot write: %s", strerror(-r));
		unlink(key_path);
	}
	return r;
}
