/* SPDX-License-Identifier: MIT */
/* The evidence store on temp directories: a fake writable layer (upper/),
 * a fake cgroup directory whose cgroup.procs lists this test's own pid, and
 * a state directory. Checks the files on disk, the manifest against them,
 * tampering, the cap (eviction, truncation), list and a remove that follows
 * no symlink. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "quarantine.h"

struct fixture {
	char dir[64];
	char state[128], layer[128], cgroup[128];
	int layer_fd;
};

static void sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	assert_int_equal(system(cmd), 0);
}

static char *slurp(const char *fmt, ...)
{
	char path[512], *buf = calloc(1, 1 << 20);
	va_list ap;
	int fd;
	ssize_t n;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		free(buf);
		return NULL;
	}
	n = read(fd, buf, (1 << 20) - 1);
	close(fd);
	assert_true(n >= 0);
	return buf;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/test-quarantine-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->state, sizeof(f->state), "%s/state", f->dir);
	snprintf(f->layer, sizeof(f->layer), "%s/layer", f->dir);
	snprintf(f->cgroup, sizeof(f->cgroup), "%s/cgroup", f->dir);
	sh("mkdir -p %s %s/upper/etc %s/upper/var/cache %s/work %s/sub", f->state, f->layer,
	   f->layer, f->layer, f->cgroup);
	sh("printf 'evil:x:0:0::/:/bin/sh\\n' > %s/upper/etc/passwd", f->layer);
	sh("printf '\\177ELF dropped' > %s/upper/var/cache/tool && chmod 4755 "
	   "%s/upper/var/cache/tool",
	   f->layer, f->layer);
	sh("ln -s /etc/shadow %s/upper/var/cache/shadow-link", f->layer);
	sh("mkfifo %s/upper/var/cache/fifo", f->layer);
	sh("touch '%s/upper/etc/name with space'", f->layer);
	/* processes: this test in the cgroup, and again in a child cgroup */
	sh("echo %d > %s/cgroup.procs && echo %d > %s/sub/cgroup.procs && echo 'frozen 1' > "
	   "%s/cgroup.events",
	   (int)getpid(), f->cgroup, (int)getpid(), f->cgroup, f->cgroup);
	f->layer_fd = open(f->layer, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(f->layer_fd >= 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	close(f->layer_fd);
	sh("chmod -R u+w %s; rm -rf %s", f->dir, f->dir);
	free(f);
	return 0;
}

static struct quarantine_record record(const char *id, const char *service, uint64_t when)
{
	static const char *const addresses[] = {"10.213.0.7", "fd00::7"};

	return (struct quarantine_record){
	    .id = id,
	    .service = service,
	    .reason = "drift",
	    .started_usec = 1700000000000000ull,
	    .quarantined_usec = when,
	    .addresses = addresses,
	    .n_addresses = 2,
	    .pid = 4242,
	};
}

static int save(struct fixture *f, const char *id, const char *service, uint64_t when, uint64_t cap,
		struct quarantine_result *res)
{
	struct quarantine_record rec = record(id, service, when);
	json_t *evidence =
	    json_pack("{s:s, s:s}", "kind", "write-outside-writable", "path", "/etc/passwd");
	char *error = NULL;
	int r;

	rec.evidence = evidence;
	r = quarantine_save(f->state, &rec, f->layer_fd, f->cgroup, cap, res, &error);
	if (r < 0)
		print_message("save %s: %s\n", id, error ? error : "?");
	free(error);
	json_decref(evidence);
	return r;
}

static void test_ids_are_validated_strictly(void **state)
{
	assert_true(quarantine_id_valid("web-1"));
	assert_true(quarantine_id_valid("0"));
	assert_true(quarantine_id_valid("a_b-c9"));
	assert_true(
	    quarantine_id_valid("abcdefghijabcdefghijabcdefghijabcdefghijabcdefgh")); /* 48 */
	assert_false(quarantine_id_valid("abcdefghijabcdefghijabcdefghijabcdefghijabcdefghi"));
	assert_false(quarantine_id_valid(""));
	assert_false(quarantine_id_valid(NULL));
	assert_false(quarantine_id_valid("-web"));
	assert_false(quarantine_id_valid("_web"));
	assert_false(quarantine_id_valid("Web-1"));
	assert_false(quarantine_id_valid("../etc"));
	assert_false(quarantine_id_valid("web/1"));
	assert_false(quarantine_id_valid("web-1.tmp"));
	assert_false(quarantine_id_valid("web 1"));
}

static void test_save_writes_the_evidence(void **state)
{
	struct fixture *f = *state;
	struct quarantine_result res = {0};
	struct stat st;
	char path[512], *text, *manifest, sha[65];
	unsigned char md[32];
	unsigned int mdlen;
	json_t *meta, *procs, *list;
	size_t i;
	bool found_self = false;

	assert_int_equal(save(f, "web-1", "web", 0, 0, &res), 0);
	assert_false(res.truncated);
	assert_false(res.over_cap);
	assert_int_equal(res.n_evicted, 0);
	assert_true(res.bytes > 0);

	/* the copy: content kept, no x or setuid bit on the host, symlink not followed */
	text = slurp("%s/quarantine/web-1/upper/etc/passwd", f->state);
	assert_string_equal(text, "evil:x:0:0::/:/bin/sh\n");
	free(text);
	snprintf(path, sizeof(path), "%s/quarantine/web-1/upper/var/cache/tool", f->state);
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	snprintf(path, sizeof(path), "%s/quarantine/web-1/upper/var/cache/shadow-link", f->state);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	snprintf(path, sizeof(path), "%s/quarantine/web-1/upper/var/cache/fifo", f->state);
	assert_int_equal(lstat(path, &st), -1);
	snprintf(path, sizeof(path), "%s/quarantine/web-1.tmp", f->state);
	assert_int_equal(lstat(path, &st), -1);

	/* metadata.json */
	text = slurp("%s/quarantine/web-1/metadata.json", f->state);
	meta = json_loads(text, 0, NULL);
	free(text);
	assert_non_null(meta);
	assert_string_equal(json_string_value(json_object_get(meta, "id")), "web-1");
	assert_string_equal(json_string_value(json_object_get(meta, "service")), "web");
	assert_string_equal(json_string_value(json_object_get(meta, "reason")), "drift");
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(meta, "evidence"), "path")),
	    "/etc/passwd");
	assert_int_equal(json_integer_value(json_object_get(meta, "pid")), 4242);
	assert_string_equal(json_string_value(json_object_get(meta, "started")),
			    "2023-11-14T22:13:20Z");
	assert_string_equal(
	    json_string_value(json_array_get(json_object_get(meta, "addresses"), 1)), "fd00::7");
	assert_true(json_is_false(json_object_get(meta, "truncated")));
	assert_true(json_integer_value(json_object_get(meta, "quarantined_usec")) > 0);
	json_decref(meta);

	/* processes.json: this process, from the cgroup and its child cgroup */
	text = slurp("%s/quarantine/web-1/processes.json", f->state);
	procs = json_loads(text, 0, NULL);
	free(text);
	assert_non_null(procs);
	assert_true(json_is_true(json_object_get(procs, "frozen")));
	list = json_object_get(procs, "processes");
	assert_int_equal(json_array_size(list), 2);
	for (i = 0; i < json_array_size(list); i++) {
		json_t *p = json_array_get(list, i);

		assert_int_equal(json_integer_value(json_object_get(p, "pid")), getpid());
		assert_string_equal(json_string_value(json_object_get(p, "comm")),
				    "test_quarantine");
		assert_int_equal(json_integer_value(json_array_get(json_object_get(p, "uid"), 0)),
				 getuid());
		assert_non_null(json_string_value(json_object_get(p, "state")));
		assert_true(json_array_size(json_object_get(p, "cmdline")) >= 1);
		found_self |= strcmp(json_string_value(json_object_get(p, "cgroup")), "/sub") == 0;
	}
	assert_true(found_self);
	json_decref(procs);

	/* MANIFEST: its hash is the one returned; exact lines for what is not content */
	manifest = slurp("%s/quarantine/web-1/MANIFEST", f->state);
	EVP_Digest(manifest, strlen(manifest), md, &mdlen, EVP_sha256(), NULL);
	for (i = 0; i < 32; i++)
		snprintf(sha + 2 * i, 3, "%02x", md[i]);
	assert_string_equal(sha, res.manifest_sha256);
	assert_true(strncmp(manifest, "mtd-quarantine-manifest 1\n", 26) == 0);
	snprintf(path, sizeof(path), "p 0644 %u %u 0 - - upper/var/cache/fifo\n", getuid(),
		 getgid());
	assert_non_null(strstr(manifest, path));
	snprintf(path, sizeof(path), "f 4755 %u %u 12 ", getuid(), getgid());
	assert_non_null(strstr(manifest, path));
	assert_non_null(strstr(manifest, " - upper/etc/name\\x20with\\x20space\n"));
	assert_non_null(strstr(manifest, " upper/var/cache/shadow-link\n"));
	assert_non_null(strstr(manifest, " metadata.json\n"));
	assert_non_null(strstr(manifest, " processes.json\n"));
	assert_null(strstr(manifest, " MANIFEST\n"));
	free(manifest);
	quarantine_result_done(&res);

	/* a second save of the same id is refused */
	assert_int_equal(save(f, "web-1", "web", 0, 0, &res), -EEXIST);
}

static bool has_problem(json_t *o, const char *what)
{
	json_t *list = json_object_get(o, "problems");

	for (size_t i = 0; i < json_array_size(list); i++)
		if (strcmp(json_string_value(json_array_get(list, i)), what) == 0)
			return true;
	return false;
}

static const char *first_problem(json_t *o)
{
	return json_string_value(json_array_get(json_object_get(o, "problems"), 0));
}

/* A process whose comm and arguments are not UTF-8 (byte 0xff) is saved
 * with them escaped: the save does not fail and the process is not dropped. */
static void test_evidence_keeps_bytes_that_are_not_utf8(void **state)
{
	struct fixture *f = *state;
	struct quarantine_result res;
	char *text, link[256];
	json_t *procs, *list, *odd = NULL;
	pid_t child;

	snprintf(link, sizeof(link), "%s/\xff", f->dir);
	assert_int_equal(symlink("/bin/sh", link), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		/* "; :" keeps the shell, and its comm, from becoming sleep */
		execl(link, "\xffsh", "-c", "sleep 30; :", "30\xff", "\\x41", (char *)NULL);
		_exit(127);
	}
	/* comm is set by the exec: wait for it */
	for (int i = 0; i < 200; i++) {
		char comm_path[64];

		snprintf(comm_path, sizeof(comm_path), "/proc/%d/comm", (int)child);
		text = slurp("%s", comm_path);
		if (text && text[0] == '\xff') {
			free(text);
			break;
		}
		free(text);
		usleep(10000);
	}
	sh("echo %d > %s/cgroup.procs", (int)child, f->cgroup);

	assert_int_equal(save(f, "web-8", "web", 1700000000000000ull, 0, &res), 0);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);

	text = slurp("%s/quarantine/web-8/processes.json", f->state);
	assert_non_null(text);
	procs = json_loads(text, 0, NULL);
	free(text);
	assert_non_null(procs);
	list = json_object_get(procs, "processes");
	for (size_t i = 0; i < json_array_size(list); i++)
		if (json_integer_value(json_object_get(json_array_get(list, i), "pid")) == child)
			odd = json_array_get(list, i);
	assert_non_null(odd);
	assert_string_equal(json_string_value(json_object_get(odd, "comm")), "\\xff");
	assert_string_equal(json_string_value(json_array_get(json_object_get(odd, "cmdline"), 0)),
			    "\\xffsh");
	assert_string_equal(json_string_value(json_array_get(json_object_get(odd, "cmdline"), 3)),
			    "30\\xff");
	assert_string_equal(json_string_value(json_array_get(json_object_get(odd, "cmdline"), 4)),
			    "\\\\x41");
	json_decref(procs);
}

/* A sparse file of the instance (64 MiB with 4 KiB of data in the middle)
 * is kept sparse, with its full size and the hash of its whole content, and
 * the entry still verifies. */
static void test_sparse_file_is_copied_sparsely(void **state)
{
	struct fixture *f = *state;
	struct quarantine_result res = {0};
	struct stat st;
	json_t *o = NULL;
	char path[256], expected[80], *manifest, *line;
	FILE *p;

	sh("truncate -s 64M %s/upper/var/cache/sparse && "
	   "dd if=/dev/urandom of=%s/upper/var/cache/sparse bs=4096 count=1 seek=8192 "
	   "conv=notrunc status=none",
	   f->layer, f->layer);
	snprintf(path, sizeof(path), "sha256sum %s/upper/var/cache/sparse", f->layer);
	p = popen(path, "r");
	assert_non_null(p);
	assert_non_null(fgets(expected, 65, p));
	pclose(p);

	assert_int_equal(save(f, "web-5", "web", 0, 0, &res), 0);
	snprintf(path, sizeof(path), "%s/quarantine/web-5/upper/var/cache/sparse", f->state);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 64 << 20);
	assert_true((uint64_t)st.st_blocks * 512 < (1 << 20)); /* not 64 MiB of zeros */
	manifest = slurp("%s/quarantine/web-5/MANIFEST", f->state);
	line = strstr(manifest, "upper/var/cache/sparse");
	assert_non_null(line);
	while (line > manifest && line[-1] != '\n')
		line--;
	assert_non_null(strstr(line, expected));
	free(manifest);
	assert_int_equal(quarantine_inspect(f->state, "web-5", &o), 0);
	assert_true(json_is_true(json_object_get(o, "verified")));
	json_decref(o);
	quarantine_result_done(&res);
}

static void test_inspect_verifies_and_detects_tampering(void **state)
{
	struct fixture *f = *state;
	struct quarantine_result res = {0};
	json_t *o = NULL;
	const char *q;
	char base[256];

	assert_int_equal(save(f, "web-2", "web", 0, 0, &res), 0);
	assert_int_equal(quarantine_inspect(f->state, "web-2", &o), 0);
	assert_true(json_is_true(json_object_get(o, "verified")));
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(o, "manifest"), "sha256")),
	    res.manifest_sha256);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(o, "metadata"), "id")), "web-2");
	assert_non_null(json_object_get(o, "processes"));
	json_decref(o);
	quarantine_result_done(&res);

	snprintf(base, sizeof(base), "%s/quarantine/web-2", f->state);
	q = base;
	/* content changed, same size */
	sh("printf 'EVIL:x:0:0::/:/bin/sh\\n' > %s/upper/etc/passwd", q);
	assert_int_equal(quarantine_inspect(f->state, "web-2", &o), 0);
	assert_true(json_is_false(json_object_get(o, "verified")));
	assert_string_equal(first_problem(o), "upper/etc/passwd: content differs");
	json_decref(o);
	sh("printf 'evil:x:0:0::/:/bin/sh\\n' > %s/upper/etc/passwd", q);
	/* an added file, a removed file, a changed symlink */
	sh("touch %s/upper/planted", q);
	assert_int_equal(quarantine_inspect(f->state, "web-2", &o), 0);
	assert_string_equal(first_problem(o), "upper/planted: not in the manifest");
	json_decref(o);
	sh("rm %s/upper/planted %s/processes.json", q, q);
	assert_int_equal(quarantine_inspect(f->state, "web-2", &o), 0);
	assert_true(json_is_false(json_object_get(o, "verified")));
	assert_true(has_problem(o, "processes.json: missing"));
	json_decref(o);
	sh("ln -sf /etc/passwd %s/upper/var/cache/shadow-link", q);
	assert_int_equal(quarantine_inspect(f->state, "web-2", &o), 0);
	assert_true(has_problem(o, "upper/var/cache/shadow-link: symlink target differs"));
	json_decref(o);
	/* a manifest line edited to match the tampering is a different manifest */
	sh("chmod u+w %s/MANIFEST && sed -i '/cache\\/tool$/s/ 12 / 13 /' %s/MANIFEST", q, q);
	assert_int_equal(quarantine_inspect(f->state, "web-2", &o), 0);
	assert_string_not_equal(
	    json_string_value(json_object_get(json_object_get(o, "manifest"), "sha256")),
	    res.manifest_sha256);
	assert_true(has_problem(o, "upper/var/cache/tool: size differs"));
	json_decref(o);
	assert_int_equal(quarantine_inspect(f->state, "nope", &o), -ENOENT);
	assert_int_equal(quarantine_inspect(f->state, "../state", &o), -EINVAL);
}

/* inspect without --verify serves what the save computed: the same figures
 * as a full check, without reading the kept files again. */
static void test_summary_serves_the_save_time_totals(void **state)
{
	struct fixture *f = *state;
	struct quarantine_result res = {0};
	json_t *o = NULL, *s = NULL, *m, *sm;

	assert_int_equal(save(f, "web-4", "web", 0, 0, &res), 0);
	assert_int_equal(quarantine_inspect(f->state, "web-4", &o), 0);
	assert_int_equal(quarantine_summary(f->state, "web-4", &s), 0);
	m = json_object_get(o, "manifest");
	sm = json_object_get(s, "manifest");
	assert_string_equal(json_string_value(json_object_get(sm, "sha256")), res.manifest_sha256);
	assert_true(json_equal(m, sm));
	assert_int_equal(json_array_size(json_object_get(s, "problems")), 0);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(s, "metadata"), "id")), "web-4");
	assert_non_null(json_object_get(s, "processes"));
	assert_true(json_is_true(json_object_get(o, "verified"))); /* SUMMARY.json is not a stray */
	json_decref(o);
	json_decref(s);
	/* a kept file moved away: the summary does not read it, a check does */
	sh("mv %s/quarantine/web-4/upper/etc/passwd %s/quarantine/web-4/upper/etc/passwd.x",
	   f->state, f->state);
	assert_int_equal(quarantine_summary(f->state, "web-4", &s), 0);
	assert_int_equal(json_array_size(json_object_get(s, "problems")), 0);
	json_decref(s);
	assert_int_equal(quarantine_inspect(f->state, "web-4", &o), 0);
	assert_true(json_is_false(json_object_get(o, "verified")));
	json_decref(o);
	/* an entry without SUMMARY.json says so */
	sh("rm -f %s/quarantine/web-4/SUMMARY.json", f->state);
	assert_int_equal(quarantine_summary(f->state, "web-4", &s), 0);
	assert_true(json_is_null(json_object_get(s, "manifest")));
	assert_non_null(strstr(first_problem(s), "SUMMARY.json: missing"));
	json_decref(s);
	assert_int_equal(quarantine_summary(f->state, "nope", &s), -ENOENT);
	assert_int_equal(quarantine_summary(f->state, "../x", &s), -EINVAL);
	quarantine_result_done(&res);
}

static uint64_t entry_bytes(json_t *list, const char *id)
{
	for (size_t i = 0; i < json_array_size(list); i++) {
		json_t *e = json_array_get(list, i);
		if (strcmp(json_string_value(json_object_get(e, "id")), id) == 0)
			return (uint64_t)json_integer_value(json_object_get(e, "bytes"));
	}
	return 0;
}

static void test_cap_evicts_oldest_of_the_same_service(void **state)
{
	struct fixture *f = *state;
	struct quarantine_result res = {0};
	json_t *list = NULL;
	uint64_t one;

	assert_int_equal(save(f, "web-10", "web", 1000, 0, &res), 0);
	one = res.bytes;
	quarantine_result_done(&res);
	assert_int_equal(save(f, "db-1", "db", 500, 0, &res), 0);
	quarantine_result_done(&res);
	assert_int_equal(save(f, "web-11", "web", 2000, 0, &res), 0);
	quarantine_result_done(&res);

	/* room for two entries of web: the third evicts the oldest, web-10 */
	assert_int_equal(save(f, "web-12", "web", 3000, 2 * one + one / 2, &res), 0);
	assert_int_equal(res.n_evicted, 1);
	assert_string_equal(res.evicted[0], "web-10");
	assert_null(res.evicted[1]);
	quarantine_result_done(&res);
	assert_int_equal(quarantine_list(f->state, &list), 0);
	assert_int_equal(json_array_size(list), 3);
	/* oldest first; the other service untouched */
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "id")),
			    "db-1");
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 1), "id")),
			    "web-11");
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 2), "id")),
			    "web-12");
	assert_true(entry_bytes(list, "web-11") + entry_bytes(list, "web-12") <= 2 * one + one / 2);
	json_decref(list);

	/* a cap below two entries: both older web entries go */
	assert_int_equal(save(f, "web-13", "web", 4000, one, &res), 0);
	assert_int_equal(res.n_evicted, 2);
	assert_string_equal(res.evicted[0], "web-11");
	assert_string_equal(res.evicted[1], "web-12");
	quarantine_result_done(&res);
}

static void test_cap_truncates_a_too_large_entry(void **state)
{
	struct fixture *f = *state;
	struct quarantine_result res = {0};
	json_t *o = NULL, *meta;
	uint64_t cap;

	sh("head -c 200000 /dev/zero > %s/upper/var/cache/big", f->layer);
	assert_int_equal(save(f, "web-20", "web", 0, 0, &res), 0);
	cap = res.bytes / 2;
	quarantine_result_done(&res);
	assert_int_equal(save(f, "web-21", "web", 0, cap, &res), 0);
	assert_true(res.truncated);
	assert_false(res.over_cap);
	assert_true(res.bytes <= cap);
	assert_int_equal(res.n_evicted, 1); /* web-20 could not stay */
	quarantine_result_done(&res);
	assert_int_equal(quarantine_inspect(f->state, "web-21", &o), 0);
	assert_true(json_is_true(json_object_get(o, "verified")));
	meta = json_object_get(o, "metadata");
	assert_true(json_is_true(json_object_get(meta, "truncated")));
	json_decref(o);
	/* what was cut is marked in the manifest */
	{
		char *m = slurp("%s/quarantine/web-21/MANIFEST", f->state);
		assert_non_null(strstr(m, "truncated=200000 upper/var/cache/big\n"));
		free(m);
	}
	/* a cap smaller than the metadata alone: saved anyway, over the cap */
	assert_int_equal(save(f, "web-22", "web", 0, 100, &res), 0);
	assert_true(res.over_cap);
	assert_true(res.truncated);
	quarantine_result_done(&res);
}

static void test_remove_follows_no_symlink(void **state)
{
	struct fixture *f = *state;
	struct quarantine_result res = {0};
	struct stat st;
	char path[512];

	sh("mkdir -p %s/outside && echo keep > %s/outside/file", f->dir, f->dir);
	assert_int_equal(save(f, "web-30", "web", 0, 0, &res), 0);
	quarantine_result_done(&res);
	sh("ln -s %s/outside %s/quarantine/web-30/upper/escape", f->dir, f->state);
	assert_int_equal(quarantine_remove(f->state, "web-30"), 0);
	snprintf(path, sizeof(path), "%s/quarantine/web-30", f->state);
	assert_int_equal(lstat(path, &st), -1);
	snprintf(path, sizeof(path), "%s/outside/file", f->dir);
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(quarantine_remove(f->state, "web-30"), -ENOENT);
	assert_int_equal(quarantine_remove(f->state, "../outside"), -EINVAL);
	/* the store itself being a symlink is refused */
	sh("mkdir -p %s/state2 && ln -s %s/outside %s/state2/quarantine", f->dir, f->dir, f->dir);
	snprintf(path, sizeof(path), "%s/state2", f->dir);
	assert_int_equal(quarantine_remove(path, "file"), -ENOTDIR);
}

static void test_interrupted_save_is_replaced_and_list_skips_it(void **state)
{
	struct fixture *f = *state;
	struct quarantine_result res = {0};
	json_t *list = NULL;
	struct stat st;
	char path[512];

	assert_int_equal(quarantine_list(f->state, &list), 0);
	assert_int_equal(json_array_size(list), 0); /* no store yet */
	json_decref(list);
	sh("mkdir -p %s/quarantine/web-40.tmp/upper && touch %s/quarantine/web-40.tmp/junk",
	   f->state, f->state);
	assert_int_equal(quarantine_list(f->state, &list), 0);
	assert_int_equal(json_array_size(list), 0);
	json_decref(list);
	assert_int_equal(save(f, "web-40", "web", 0, 0, &res), 0);
	quarantine_result_done(&res);
	snprintf(path, sizeof(path), "%s/quarantine/web-40/junk", f->state);
	assert_int_equal(lstat(path, &st), -1);
	assert_int_equal(quarantine_list(f->state, &list), 0);
	assert_int_equal(json_array_size(list), 1);
	json_decref(list);
}

/* At the next start, what a killed agent was still saving goes, and only that. */
static void test_interrupted_saves_are_removed_at_start(void **state)
{
	struct fixture *f = *state;
	struct quarantine_result res = {0};
	json_t *removed = NULL, *list = NULL;
	struct stat st;
	char path[512];

	assert_int_equal(quarantine_remove_interrupted(f->state, &removed), 0); /* no store */
	assert_int_equal(json_array_size(removed), 0);
	json_decref(removed);
	assert_int_equal(save(f, "web-41", "web", 0, 0, &res), 0);
	quarantine_result_done(&res);
	sh("mkdir -p %s/quarantine/web-42.tmp/upper/etc && touch %s/quarantine/web-42.tmp/junk",
	   f->state, f->state);
	assert_int_equal(quarantine_remove_interrupted(f->state, &removed), 0);
	assert_int_equal(json_array_size(removed), 1);
	assert_string_equal(json_string_value(json_array_get(removed, 0)), "web-42");
	json_decref(removed);
	snprintf(path, sizeof(path), "%s/quarantine/web-42.tmp", f->state);
	assert_int_equal(lstat(path, &st), -1);
	assert_int_equal(quarantine_list(f->state, &list), 0);
	assert_int_equal(json_array_size(list), 1); /* web-41 is kept */
	json_decref(list);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ids_are_validated_strictly),
	    cmocka_unit_test_setup_teardown(test_save_writes_the_evidence, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_evidence_keeps_bytes_that_are_not_utf8, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_sparse_file_is_copied_sparsely, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_inspect_verifies_and_detects_tampering, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_summary_serves_the_save_time_totals, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_cap_evicts_oldest_of_the_same_service, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_cap_truncates_a_too_large_entry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_remove_follows_no_symlink, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_interrupted_save_is_replaced_and_list_skips_it,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_interrupted_saves_are_removed_at_start, setup,
					    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
