<?php
// Router for PHP's built-in server. Debian's wp-config.php looks for WORDPRESS_CONFIG in
// $_SERVER, where this server puts no environment: copy it there. Unknown paths go to
// index.php, as a web server's rewrite rules would send them (so pretty permalinks work).
$_SERVER['WORDPRESS_CONFIG'] = getenv('WORDPRESS_CONFIG');
// One line per request, so the tests can count what reached WordPress.
file_put_contents('php://stderr', "one-request {$_SERVER['REQUEST_METHOD']} {$_SERVER['REQUEST_URI']}\n");
// Tests may slow every answer down (milliseconds in this file) to measure concurrency.
$delay = (int) @file_get_contents(getenv('ONE_WP_DELAY_FILE'));
if ($delay > 0) {
    usleep($delay * 1000);
}
$root = rtrim($_SERVER['DOCUMENT_ROOT'], '/');
$file = $root . parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
if (is_file($file) && substr($file, -4) !== '.php') {
    return false;
}
if (is_dir($file)) {
    $file = rtrim($file, '/') . '/index.php';
}
if (!is_file($file)) {
    $file = $root . '/index.php';
}
$_SERVER['SCRIPT_FILENAME'] = $file;
$_SERVER['SCRIPT_NAME'] = $_SERVER['PHP_SELF'] = substr($file, strlen($root));
chdir(dirname($file));
require $file;
