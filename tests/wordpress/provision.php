<?php
/**
 * Installs a stock WordPress into the database of the config named by WORDPRESS_CONFIG and seeds
 * what the tests read: users, categories, tags, posts (published, draft, private), pages, and
 * an Application Password. Prints one JSON object on stdout.
 *
 * Usage: WORDPRESS_CONFIG=<name> php provision.php <site url>
 */
$url = $argv[1];
$_SERVER['HTTP_HOST'] = parse_url($url, PHP_URL_HOST) . ':' . parse_url($url, PHP_URL_PORT);
define('WP_INSTALLING', true);
require '/usr/share/wordpress/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
require_once ABSPATH . 'wp-includes/class-wp-application-passwords.php';

ob_start();
wp_install('ONE Test Blog', 'admin', 'admin@one.test', true, '', 'admin-' . wp_generate_password(16, false));
ob_end_clean();
update_option('siteurl', $url);
update_option('home', $url);
update_option('permalink_structure', '');
// A fresh install has a "Hello world!" post and sample pages: start from nothing.
foreach (get_posts(['post_type' => ['post', 'page'], 'post_status' => 'any', 'numberposts' => -1]) as $p) {
    wp_delete_post($p->ID, true);
}

$editor = wp_insert_user([
    'user_login' => 'editor', 'user_email' => 'editor@one.test', 'display_name' => 'Eddie Editor',
    'user_pass' => wp_generate_password(24), 'role' => 'editor',
]);
$author = wp_insert_user([
    'user_login' => 'author', 'user_email' => 'author@one.test', 'display_name' => 'Ann Author',
    'user_pass' => wp_generate_password(24), 'role' => 'author',
]);
$news = wp_insert_term('News', 'category')['term_id'];
$guides = wp_insert_term('Guides', 'category')['term_id'];
$launch = wp_insert_term('launch', 'post_tag')['term_id'];

$posts = ['publish' => [], 'draft' => [], 'private' => []];
$base = strtotime('2025-01-01 00:00:00');
for ($i = 1; $i <= 60; $i++) {
    $status = $i <= 54 ? 'publish' : ($i <= 57 ? 'draft' : 'private');
    $date = gmdate('Y-m-d H:i:s', $base + $i * 3600);
    $id = wp_insert_post([
        'post_title' => sprintf('Post %02d%s', $i, $i % 10 == 0 ? ' about gardening' : ''),
        'post_content' => "<p>Body of post $i.</p>",
        'post_excerpt' => "Excerpt $i",
        'post_status' => $status,
        'post_author' => $i % 2 ? $editor : $author,
        'post_category' => [$i % 3 ? $news : $guides],
        'tags_input' => $i % 5 ? [] : ['launch'],
        'post_date_gmt' => $date,
        'post_date' => $date,
    ], true);
    if (is_wp_error($id)) { fwrite(STDERR, $id->get_error_message()); exit(1); }
    $posts[$status][] = $id;
}
$pages = [];
foreach (['About us', 'Contact'] as $title) {
    $pages[] = wp_insert_post(['post_title' => $title, 'post_type' => 'page', 'post_status' => 'publish',
        'post_content' => "<p>$title page.</p>", 'post_author' => $editor]);
}
[$password] = WP_Application_Passwords::create_new_application_password($editor, ['name' => 'one-gateway']);
[$author_password] = WP_Application_Passwords::create_new_application_password($author, ['name' => 'one-gateway']);

echo json_encode([
    'posts' => $posts,
    'pages' => $pages,
    'users' => ['editor' => $editor, 'author' => $author],
    'categories' => ['news' => $news, 'guides' => $guides],
    'tags' => ['launch' => $launch],
    'application_password' => $password,
    'author_application_password' => $author_password,
]);
